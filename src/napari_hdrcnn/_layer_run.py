"""Reconstructing napari image layers in the warm worker process.

Which layers the network can take (`layer_refusal`), and `LayerRun`: one or several layers in
turn through the one shared worker (`_worker.py`), fed from a napari thread worker, with
progress bars and Cancel in napari's activity dock, and one new "<name> HDR" layer per input.
The dock widget, the layer-list command and `reconstruct_layers` all run through it, so the
three behave the same. Only one run at a time: the worker process is shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from psygnal import Signal

from ._worker import Done, Failed, FrameResult, Job, Progress, Stopped, shared_process
from .options import ReconstructOptions
from .tonemap import display_range

FLOAT_SLACK = 1e-3  # the core accepts floats this far outside [0, 1] (rounding in a pipeline)
INTEGER_TYPES = (np.uint8, np.uint16)

_ACTIVE: list[LayerRun] = []  # the run in progress, if any


def active_run() -> LayerRun | None:
    return _ACTIVE[0] if _ACTIVE else None


# -- which layers qualify --------------------------------------------------------------------------
def layer_data(layer) -> Any:
    """The full-resolution array of an image layer (level 0 of a multiscale one)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def layer_refusal(layer) -> str | None:
    """Why the network cannot take `layer` ("an HDR float layer ...: already HDR"), or None.

    Accepted: image layers of 8/16-bit integers or floats in [0, 1], RGB(A) or grey, one image
    or a time series along the first axis.
    """
    from napari.layers import Image

    if not isinstance(layer, Image):
        return f"a {layer.__class__.__name__.lower()} layer, not an image"  # proxies hide type()
    data = layer_data(layer)
    spatial = 3 if layer.rgb else 2
    kind = "RGB" if layer.rgb else "grey"
    if len(data.shape) not in (spatial, spatial + 1):
        return (
            f"a {len(data.shape)}-D {kind} image of shape {tuple(data.shape)}; expected one "
            f"image or a time series (T, Y, X{', C' if layer.rgb else ''})"
        )
    if layer.rgb and data.shape[-1] not in (3, 4):
        return f"an image of {data.shape[-1]} channels; expected RGB or RGBA"
    dtype = np.dtype(data.dtype)
    if dtype.kind == "f":
        values = np.asarray(data)
        if not np.all(np.isfinite(values)):
            return "a float layer holding NaN or Inf values: already HDR?"
        lo, hi = float(values.min()), float(values.max())
        if hi > 1 + FLOAT_SLACK:
            return f"an HDR float layer (values up to {hi:.4g}, not in [0, 1]): already HDR"
        if lo < -FLOAT_SLACK:
            return f"a float layer with values down to {lo:.4g}, not in [0, 1]"
        return None
    if dtype not in INTEGER_TYPES:
        return f"a {dtype} image; the network takes 8/16-bit integers or floats in [0, 1]"
    return None


@dataclass
class LayerInput:
    layer: Any
    frames: np.ndarray  # (T, H, W[, C]): a copy, the reconstruction never touches the layer
    is_series: bool


def layer_input(layer) -> LayerInput:
    """The layer's frames, or ValueError naming the layer and why it cannot be taken."""
    reason = layer_refusal(layer)
    if reason:
        raise ValueError(f"layer '{layer.name}' is {reason}")
    frames = np.array(layer_data(layer))
    series = frames.ndim == (4 if layer.rgb else 3)
    return LayerInput(layer, frames if series else frames[None], series)


@dataclass(frozen=True)
class NextLayer:
    """Before each job's worker messages: the index of the input they belong to."""

    index: int


def job_messages(process, jobs: list[Job]):
    """A `NextLayer` before each job's messages (the process ending early is already a last
    `Stopped` message). A failure or a stop ends the run: the next layers would fail the same
    way."""
    for index, job in enumerate(jobs):
        yield NextLayer(index)
        for msg in process.run(job):
            yield msg
            if isinstance(msg, (Failed, Stopped)):
                return


# -- progress in napari's activity dock ------------------------------------------------------------
class RunProgress:
    """Two napari progress bars, frames of the run (with Cancel) and tiles of the current frame.

    napari's Qt progress bar calls `processEvents` on every change, so the next worker message
    (or the end of the run, which closes the bars) can arrive *inside* an update. Changes are
    therefore recorded first and applied by one non-reentrant loop, and the bars are closed only
    by that loop, never from inside one of their own updates.
    """

    def __init__(self, n_frames: int, on_cancel):
        from napari.utils import cancelable_progress, progress

        class FramesBar(cancelable_progress):
            def cancel(self):  # the activity dock's Cancel button
                super().cancel()
                on_cancel()

        self._frames = FramesBar(total=n_frames, desc="HDR-CNN frames")
        # two plain bars: napari 0.9 with PyQt6 crashes closing a nested bar group from a slot
        self._tiles = progress(total=0, desc="HDR-CNN tiles")
        self._wanted = {"frames": 0, "tiles": 0, "total": 0, "desc": "", "closed": False}
        self._applying = False
        self._again = False

    def show_tiles(self, desc: str, done: int, total: int):
        self._wanted.update(tiles=done, total=total, desc=desc)
        self._apply()

    def show_frames(self, done: int):
        self._wanted["frames"] = done
        self._apply()

    def close(self):
        self._wanted["closed"] = True
        self._apply()

    def _apply(self):
        if self._applying:  # called from inside an update: the running loop picks it up
            self._again = True
            return
        self._applying = True
        try:
            self._again = True
            while self._again and self._tiles is not None:
                self._again = False
                self._apply_once()
        finally:
            self._applying = False

    def _apply_once(self):
        want = self._wanted
        if want["closed"]:
            tiles, frames = self._tiles, self._frames
            self._tiles = self._frames = None
            tiles.close()
            frames.close()
            return
        if self._tiles.total != want["total"]:
            self._tiles.total = want["total"]
        if want["desc"] and self._tiles.desc != want["desc"]:
            self._tiles.set_description(want["desc"])
        if self._tiles.n != want["tiles"]:  # update() is what emits napari's events
            self._tiles.update(want["tiles"] - self._tiles.n)
        if self._frames.n != want["frames"]:
            self._frames.update(want["frames"] - self._frames.n)


# -- a run ---------------------------------------------------------------------------------------
class LayerRun:
    """Reconstruct `inputs` one after the other; each finished one becomes a new layer at once,
    so a cancel keeps the layers already done and adds nothing for the unfinished one.

    `finished` is emitted once, on napari's UI thread, with the list of new HDR layers.
    `error` then holds the worker's message (None after success or a cancel).
    """

    finished = Signal(list)

    def __init__(
        self,
        viewer,
        inputs: list[LayerInput],
        weights: str,
        options: ReconstructOptions,
        device: str,
        engine: str,
        *,
        blend_mask_layer: bool = False,
        metadata: dict[str, Any] | None = None,
    ):
        if not inputs:
            raise ValueError("no layer to reconstruct")
        self._viewer = viewer
        self.inputs = inputs
        self.jobs = [Job(item.frames, weights, options) for item in inputs]
        self.device = device
        self.engine = engine
        self.blend_mask_layer = blend_mask_layer
        self.metadata = metadata or {}
        self.new_layers: list[Any] = []
        self.error: str | None = None
        self.cancelled = False
        self.done = False
        self.process = None
        self.thread_worker = None
        self._index = -1
        self._collected: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._frames_before = 0
        self._bars: RunProgress | None = None

    @property
    def n_frames(self) -> int:
        return sum(len(item.frames) for item in self.inputs)

    def start(self):
        """Start in a napari thread worker (returned); refused while another run is going."""
        from napari.qt.threading import create_worker

        if _ACTIVE:
            raise RuntimeError("a reconstruction is already running; wait for it or cancel it")
        _ACTIVE.append(self)
        self.process = shared_process(self.device, self.engine)
        self._bars = RunProgress(self.n_frames, self.cancel)
        worker = create_worker(job_messages, self.process, self.jobs, _start_thread=False)
        worker.yielded.connect(self._on_message)
        worker.returned.connect(lambda _: self._finish())
        worker.errored.connect(self._on_error)
        self.thread_worker = worker
        worker.start()
        return worker

    def cancel(self, *_):
        """Stop now (ends the worker process); the unfinished layer is not added."""
        if self.done or self.process is None:
            return
        self.cancelled = True
        self.process.cancel()

    def _on_message(self, msg):
        """One message of `job_messages` (the worker protocol of `_worker`), on the UI thread."""
        if isinstance(msg, NextLayer):
            self._frames_before += len(self._collected)
            self._index, self._collected = msg.index, {}
        elif isinstance(msg, Progress) and self._bars is not None:
            name = self.inputs[self._index].layer.name
            where = f" {self._index + 1}/{len(self.inputs)}" if len(self.inputs) > 1 else ""
            desc = f"HDR-CNN tiles of '{name}'{where}, frame {msg.frame + 1}/{msg.n_frames}"
            self._bars.show_tiles(desc, msg.tiles_done, msg.tiles_total)
        elif isinstance(msg, FrameResult):
            self._collected[msg.frame] = (msg.hdr, msg.mask)
            if self._bars is not None:
                self._bars.show_frames(self._frames_before + len(self._collected))
        elif isinstance(msg, Done) and not self.cancelled:
            item = self.inputs[self._index]
            if len(self._collected) == len(item.frames):
                self.new_layers.append(self._add_output(item, self._collected))
            else:
                self.error = f"the worker returned too few frames for '{item.layer.name}'"
        elif isinstance(msg, (Failed, Stopped)) and not self.cancelled:
            reason = msg.message if isinstance(msg, Failed) else msg.reason
            self.error = f"'{self.inputs[self._index].layer.name}': {reason}"

    def _on_error(self, err: Exception):
        """An unexpected exception on the napari side of the run (worker errors are messages)."""
        self.error = f"{type(err).__name__}: {err}"
        self._finish()

    def _finish(self):
        from napari.utils.notifications import show_error

        if self.done:
            return
        self.done = True
        if self._bars is not None:
            self._bars.close()
            self._bars = None
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self.cancelled:
            self.error = None
        elif self.error:
            show_error(f"HDR-CNN: {self.error}")
        self.finished.emit(list(self.new_layers))

    def _add_output(self, item: LayerInput, collected):
        layer = item.layer
        hdr = np.stack([collected[i][0] for i in range(len(collected))])
        mask = np.stack([collected[i][1] for i in range(len(collected))])
        if not item.is_series:
            hdr, mask = hdr[0], mask[0]
        clim, gamma = display_range(hdr)
        rgb = hdr.shape[-1] in (3, 4) and hdr.ndim == mask.ndim + 1
        same_grid = hdr.shape[: mask.ndim] == tuple(np.shape(layer_data(layer))[: mask.ndim])
        placement = (
            {"scale": layer.scale[: mask.ndim], "translate": layer.translate[: mask.ndim]}
            if same_grid
            else {}
        )
        metadata = {"hdrcnn": {"source_layer": layer.name, **self.metadata}}
        new_layer = self._viewer.add_image(
            hdr,
            name=f"{layer.name} HDR",
            rgb=rgb,
            contrast_limits=clim,
            gamma=gamma,
            metadata=metadata,
            **placement,
        )
        if self.blend_mask_layer:
            self._viewer.add_image(
                mask,
                name=f"{layer.name} HDR blend mask",
                colormap="magma",
                contrast_limits=(0.0, 1.0),
                blending="additive",
                opacity=0.6,
                metadata=metadata,
                **placement,
            )
        return new_layer
