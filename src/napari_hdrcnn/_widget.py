"""The "HDR-CNN reconstruction" dock widget.

A magicgui form over the reconstruction core. TensorFlow never loads in napari's process (it
crashes napari's software OpenGL): each run is a `Job` for the warm worker process of
`_worker.py`, whose messages a napari thread worker carries back to the UI thread, where the
progress bars move and, at the end, the new layer is added. Cancel ends the worker process.

Settings are remembered in a JSON file, `widget.json` in `$NAPARI_HDRCNN_CONFIG_DIR` or else
platformdirs' `user_config_dir("napari-hdrcnn")`, written at each Run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
)
from psygnal import Signal

from ._worker import Failed, FrameResult, Job, Progress, Stopped, prewarm, shared_process
from .io.atomic import atomic_write
from .options import DEVICES, ENGINES, SIZINGS, ReconstructOptions, help_text
from .reconstruct import as_unit_rgb
from .tonemap import display_range
from .weights import VIDEO_WEIGHT_NAMES, available_weights, resolve

if TYPE_CHECKING:
    import napari

CHOOSE_FILE = "choose a file..."
TILE_CHOICES = ("auto", "64", "128", "256", "512", "1024", "2048")
CONFIG_ENV = "NAPARI_HDRCNN_CONFIG_DIR"
SETTINGS_FILE = "widget.json"
DEFAULTS: dict[str, Any] = {
    "weights": "default",
    "weights_file": "",
    "gamma": 1.0,
    "scaling": 1.0,
    "sizing": "native",
    "ref_width": 1024,
    "ref_height": 768,
    "tile": "auto",
    "device": "auto",
    "engine": "auto",
    "blend_mask": False,
}


# -- settings ------------------------------------------------------------------------------------
def settings_path() -> Path:
    folder = os.environ.get(CONFIG_ENV)
    if not folder:
        from platformdirs import user_config_dir

        folder = user_config_dir("napari-hdrcnn")
    return Path(folder) / SETTINGS_FILE


def load_settings() -> dict[str, Any]:
    """The remembered settings over the defaults; a missing or broken file gives the defaults."""
    settings = dict(DEFAULTS)
    try:
        stored = json.loads(settings_path().read_text())
    except (OSError, ValueError):
        return settings
    if isinstance(stored, dict):
        for key, default in DEFAULTS.items():
            value = stored.get(key)
            if isinstance(value, type(default)) or (
                isinstance(default, float) and isinstance(value, int)
            ):
                settings[key] = value
    return settings


def save_settings(settings: dict[str, Any]) -> None:
    text = json.dumps({k: settings[k] for k in DEFAULTS if k in settings}, indent=1)
    atomic_write(settings_path(), lambda tmp: Path(tmp).write_text(text))


# -- layer data -> frames --------------------------------------------------------------------------
def layer_frames(layer) -> tuple[np.ndarray, bool]:
    """(frames (T, H, W[, C]), is_time_series) from an image layer; a copy, never a view.

    An RGB(A) layer of 4 dimensions, or a grey layer of 3, is a time series along axis 0.
    """
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    frames = np.array(data)  # a copy: the reconstruction must not touch the layer
    spatial = 3 if layer.rgb else 2
    if frames.ndim == spatial:
        return frames[None], False
    if frames.ndim == spatial + 1:
        return frames, True
    kind = "RGB" if layer.rgb else "grey"
    raise ValueError(
        f"layer '{layer.name}' is a {frames.ndim}-D {kind} image of shape "
        f"{frames.shape}; expected one image or a time series (T, Y, X"
        f"{', C' if layer.rgb else ''})"
    )


def check_frames(frames: np.ndarray, name: str) -> None:
    """Refuse a pixel type or range the core refuses, before anything is sent to the worker."""
    try:
        as_unit_rgb(frames[0])
        if frames.dtype.kind == "f" and len(frames) > 1:
            lo, hi = float(np.nanmin(frames)), float(np.nanmax(frames))
            if not (np.all(np.isfinite(frames)) and lo >= -1e-3 and hi <= 1 + 1e-3):
                raise ValueError(
                    f"float input must be finite and in [0, 1], found [{lo:.4g}, {hi:.4g}]"
                )
    except ValueError as err:
        raise ValueError(f"layer '{name}': {err}") from err


def installed_weight_names() -> list[str]:
    return [row["name"] for row in available_weights() if row["installed"]]


# -- progress in napari's activity dock ----------------------------------------------------------
class RunProgress:
    """Two napari progress bars, frames and tiles of the current frame.

    napari's Qt progress bar calls `processEvents` on every change, so the next worker message
    (or the end of the run, which closes the bars) can arrive *inside* an update. Changes are
    therefore recorded first and applied by one non-reentrant loop, and the bars are closed only
    by that loop, never from inside one of their own updates.
    """

    def __init__(self, n_frames: int):
        from napari.utils import progress

        self._frames = progress(total=n_frames, desc="HDR-CNN frames")
        # two plain bars: napari 0.9 with PyQt6 crashes closing a nested bar group from a slot
        self._tiles = progress(total=0, desc="HDR-CNN tiles")
        self._wanted = {"frames": 0, "tiles": 0, "total": 0, "desc": "", "closed": False}
        self._applying = False
        self._again = False

    def show_tiles(self, frame: int, n_frames: int, done: int, total: int):
        self._wanted.update(
            tiles=done, total=total, desc=f"HDR-CNN tiles of frame {frame + 1}/{n_frames}"
        )
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


# -- the widget -----------------------------------------------------------------------------------
class HDRCNNWidget(Container):
    """Reconstruct an HDR image (or each frame of a time series) from the chosen image layer.

    Scripting: set the form's values (`widget.image.value = layer`, `widget.weights.value`,
    `widget.weights_file.value`, `widget.gamma.value`, ...), call `run()`, and connect to
    `reconstructed`, which is emitted with the new HDR layer, or None after a cancel or error.
    """

    reconstructed = Signal(object)

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        self._viewer = napari_viewer
        self._settings = load_settings()
        self._thread_worker = None
        self._process = None
        self._cancel_requested = False
        self._job_error: str | None = None
        self._bars: RunProgress | None = None
        s = self._settings
        weight_choices = installed_weight_names() + [CHOOSE_FILE]
        super().__init__(
            widgets=[
                ComboBox(
                    name="image",
                    label="input image",
                    choices=self._image_layers,
                    tooltip="8/16-bit RGB or grey photo, or float in [0, 1]; (T, Y, X[, 3]) "
                    "is a time series",
                ),
                ComboBox(
                    name="weights",
                    label="weights",
                    choices=weight_choices,
                    value=s["weights"] if s["weights"] in weight_choices else weight_choices[0],
                    tooltip="installed weights (add the authors' with `hdrcnn weights "
                    "download NAME`), or a weight file",
                ),
                FileEdit(
                    name="weights_file",
                    label="weights file",
                    mode="r",
                    filter="*.npz",
                    value=s["weights_file"] or None,
                ),
                FloatSpinBox(
                    name="gamma",
                    label="gamma",
                    min=0.5,
                    max=3.0,
                    step=0.05,
                    value=s["gamma"],
                    tooltip="1.1-1.3 boosts the highlights",
                ),
                FloatSpinBox(
                    name="scaling",
                    label="scaling",
                    min=1.0,
                    max=2.0,
                    step=0.01,
                    value=s["scaling"],
                    tooltip="> 1 pushes near-white pixels into clipping (JPEG noise)",
                ),
                ComboBox(
                    name="sizing",
                    label="sizing",
                    choices=SIZINGS,
                    value=s["sizing"],
                    tooltip="native: any size, no resampling; reference: crop and resize "
                    "to width x height as the authors",
                ),
                SpinBox(
                    name="ref_width",
                    label="width",
                    min=32,
                    max=16384,
                    step=32,
                    value=s["ref_width"],
                ),
                SpinBox(
                    name="ref_height",
                    label="height",
                    min=32,
                    max=16384,
                    step=32,
                    value=s["ref_height"],
                ),
                ComboBox(
                    name="tile",
                    label="tile size",
                    choices=TILE_CHOICES,
                    value=s["tile"] if s["tile"] in TILE_CHOICES else "auto",
                    tooltip="auto picks the largest tile that fits in memory",
                ),
                ComboBox(
                    name="device",
                    label="device",
                    choices=DEVICES,
                    value=s["device"] if s["device"] in DEVICES else "auto",
                ),
                ComboBox(
                    name="engine",
                    label="engine",
                    choices=ENGINES,
                    value=s["engine"] if s["engine"] in ENGINES else "auto",
                    tooltip=help_text("engine"),
                ),
                CheckBox(
                    name="blend_mask", text="also add the blend mask layer", value=s["blend_mask"]
                ),
                PushButton(name="run_button", text="Run"),
                PushButton(name="cancel_button", text="Cancel", enabled=False),
                Label(name="status", value="ready"),
            ]
        )
        self.weights.changed.connect(self._update_visibility)
        self.sizing.changed.connect(self._update_visibility)
        self.image.changed.connect(self._describe_input)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.status.native.setWordWrap(True)  # long messages wrap instead of widening the dock
        layer_events = [
            getattr(napari_viewer.layers.events, name)
            for name in ("inserted", "removed", "reordered", "renamed")
        ]
        for event in layer_events:
            event.connect(self._refresh_layers)
        # a closed widget must not be called by the viewer's layer list any more
        self.native.destroyed.connect(
            lambda *_, events=layer_events, callback=self._refresh_layers: [
                event.disconnect(callback) for event in events
            ]
        )
        self._update_visibility()
        self._describe_input()
        prewarm(self.device.value, self.engine.value)  # loads while the user fills in the form

    # -- form helpers ---------------------------------------------------------------------------
    def _image_layers(self, _widget=None) -> list[tuple[str, Any]]:
        from napari.layers import Image

        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]

    def _refresh_layers(self, *_):
        self.reset_choices()

    def reset_choices(self, *_):
        super().reset_choices()
        self._describe_input()

    def _update_visibility(self, *_):
        self.weights_file.visible = self.weights.value == CHOOSE_FILE
        reference = self.sizing.value == "reference"
        self.ref_width.visible = reference
        self.ref_height.visible = reference

    def _describe_input(self, *_):
        if self.busy or self.get_widget("status") is None:  # running, or still being built
            return
        layer = self.image.value
        text = "ready"
        if layer is not None:
            shape = np.shape(layer.data)
            n = shape[0] if len(shape) == (4 if layer.rgb else 3) else 1
            if n > 1:
                text = (
                    f"ready: time series of {n} frames, reconstructed frame by frame; "
                    f"for video the temporally regularised weights '{VIDEO_WEIGHT_NAMES[0]}' "
                    "flicker less"
                )
        self.status.value = text

    def current_settings(self) -> dict[str, Any]:
        return {
            "weights": self.weights.value,
            "weights_file": str(self.weights_file.value or ""),
            "gamma": float(self.gamma.value),
            "scaling": float(self.scaling.value),
            "sizing": self.sizing.value,
            "ref_width": int(self.ref_width.value),
            "ref_height": int(self.ref_height.value),
            "tile": self.tile.value,
            "device": self.device.value,
            "engine": self.engine.value,
            "blend_mask": bool(self.blend_mask.value),
        }

    def _weights_source(self, settings: dict[str, Any]) -> str:
        if settings["weights"] != CHOOSE_FILE:
            return str(resolve(settings["weights"]))  # a missing file is reported right away
        path = settings["weights_file"]
        if not path or not Path(path).is_file():
            raise ValueError(f"choose a weight file (.npz); '{path}' is not a file")
        return path

    @staticmethod
    def _run_options(settings: dict[str, Any]) -> ReconstructOptions:
        options = {
            "gamma": settings["gamma"],
            "scaling": settings["scaling"],
            "sizing": settings["sizing"],
            "tile": None if settings["tile"] == "auto" else int(settings["tile"]),
            "device": settings["device"],
            "engine": settings["engine"],
        }
        if settings["sizing"] == "reference":
            options.update(width=settings["ref_width"], height=settings["ref_height"])
        return ReconstructOptions(**options)

    @property
    def busy(self) -> bool:
        return self._thread_worker is not None

    # -- run / cancel ---------------------------------------------------------------------------
    def run(self, *_):
        """Start a reconstruction of the chosen layer; returns the napari thread worker, or None
        when the form is incomplete (the reason is shown as a notification)."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        if self.busy:
            return None
        layer = self.image.value
        settings = self.current_settings()
        try:
            if layer is None:
                raise ValueError("choose an input image layer")
            frames, is_series = layer_frames(layer)
            check_frames(frames, layer.name)
            job = Job(frames, self._weights_source(settings), self._run_options(settings))
        except ValueError as err:
            show_error(f"HDR-CNN: {err}")
            return None
        try:
            save_settings(settings)
        except OSError:
            pass  # remembering settings is a convenience, never a reason to fail a run

        self._cancel_requested = False
        self._process = shared_process(settings["device"], settings["engine"])
        collected: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._bars = RunProgress(len(frames))
        worker = create_worker(self._process.run, job, _start_thread=False)
        worker.yielded.connect(lambda msg: self._on_message(msg, collected))
        worker.returned.connect(
            lambda _: self._on_finished(layer, collected, len(frames), is_series, settings)
        )
        worker.errored.connect(self._on_error)
        self._thread_worker = worker
        self._set_running(True, f"running on {len(frames)} frame(s)...")
        worker.start()
        return worker

    def cancel(self, *_):
        """Stop the running reconstruction now (ends the worker process); no layer is added."""
        if not self.busy:
            return
        self._cancel_requested = True
        self.status.value = "cancelling..."
        self._process.cancel()

    def _set_running(self, running: bool, text: str):
        self.run_button.enabled = not running
        self.cancel_button.enabled = running
        self.status.value = text

    def _on_message(self, msg, collected: dict):
        """One message of the worker protocol (`_worker`), on the UI thread."""
        if isinstance(msg, Progress) and self._bars is not None:
            self._bars.show_tiles(msg.frame, msg.n_frames, msg.tiles_done, msg.tiles_total)
        elif isinstance(msg, FrameResult):
            collected[msg.frame] = (msg.hdr, msg.mask)
            if self._bars is not None:
                self._bars.show_frames(len(collected))
        elif isinstance(msg, Failed):
            self._job_error = msg.message
        elif isinstance(msg, Stopped):
            self._job_error = msg.reason

    def _finish(self, text: str):
        if self._bars is not None:
            self._bars.close()
            self._bars = None
        self._thread_worker = None
        self._set_running(False, text)

    def _on_error(self, err: Exception):
        """An unexpected exception on the napari side of the run (worker errors are messages)."""
        from napari.utils.notifications import show_error

        self._finish("failed; ready")
        show_error(f"HDR-CNN: {type(err).__name__}: {err}")
        self.reconstructed.emit(None)

    def _on_finished(self, layer, collected, n_frames, is_series, settings):
        from napari.utils.notifications import show_error

        error, self._job_error = self._job_error, None
        if self._cancel_requested:
            self._finish("cancelled; ready")
            self.reconstructed.emit(None)
            return
        if error or len(collected) != n_frames:
            self._finish("failed; ready")
            show_error(f"HDR-CNN: {error or 'the worker returned too few frames'}")
            self.reconstructed.emit(None)
            return
        new_layer = self._add_output(layer, collected, is_series, settings)
        self._finish(f"ready; added '{new_layer.name}'")
        self.reconstructed.emit(new_layer)

    def _add_output(self, layer, collected, is_series, settings):
        hdr = np.stack([collected[i][0] for i in range(len(collected))])
        mask = np.stack([collected[i][1] for i in range(len(collected))])
        if not is_series:
            hdr, mask = hdr[0], mask[0]
        clim, gamma = display_range(hdr)
        rgb = hdr.shape[-1] in (3, 4) and hdr.ndim == (4 if is_series else 3)
        same_grid = hdr.shape[: mask.ndim] == tuple(np.shape(layer.data)[: mask.ndim])
        placement = (
            {"scale": layer.scale[: mask.ndim], "translate": layer.translate[: mask.ndim]}
            if same_grid
            else {}
        )
        metadata = {"hdrcnn": {"source_layer": layer.name, **settings}}
        new_layer = self._viewer.add_image(
            hdr,
            name=f"{layer.name} HDR",
            rgb=rgb,
            contrast_limits=clim,
            gamma=gamma,
            metadata=metadata,
            **placement,
        )
        if settings["blend_mask"]:
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
