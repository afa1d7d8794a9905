"""Reconstructing sequences of frames: a video, an image sequence, a folder, or an array stack.

One frame is one job (`frame_jobs`): read (or take) its pixels, reconstruct, write
`{k:06d}_out.exr` (k is the 1-based frame number; with `names="input"`, the input's own stem:
`photo_out.exr`) and, where asked, the `_in.png`/`_out.png` previews. The job runs on one of
two backends behind one signature: `frame_jobs.PlainBackend` (this process) or
`dask_runner.ClusterBackend` (a Dask cluster); both give the same files bit for bit.

Both hand back `FrameOutcome`s in frame order with a bounded number of frames in flight,
so memory does not grow with the length of a video. `run_sequence` consumes them: progress,
the preview video, and the temporal-stability figure are computed here, at the caller, in frame
order, from the outputs *as written* (an EXR in half precision reads back exactly as written),
so the figure is the same for the plain loop, a cluster, and a resumed run.

A frame whose outputs all exist is skipped unless `overwrite=True` (outputs are written
atomically, so an existing file is a whole file): an interrupted run started again goes on
where it stopped. A frame that fails is reported and the others go on.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import io
from .frame_jobs import (  # noqa: F401  (OutputSpec, FrameOutcome, remove_stale_temps: API here too)
    FrameOutcome,
    OutputSpec,
    PlainBackend,
    TileProgress,
    remove_stale_temps,
)
from .options import ReconstructOptions
from .reconstruct import InputImageError
from .weights import AUTHORS_FILES, Weights, load_weights

DEFAULT_PREVIEW_FPS = 25.0
# How output files are named: "number" {k:06d} (the reference release's), "input" the input's
# own stem (a video's frames: {video stem}_{k:06d})
NAMINGS = ("number", "input")


# -- a whole sequence -----------------------------------------------------------------------------
def is_temporally_regularised(weights: Weights) -> bool:
    """Weights trained with temporal regularisation: ours say so in their metadata, the
    authors' are known by their file name."""
    if str(weights.metadata.get("regularization", "none")) != "none":
        return True
    return Path(weights.source).name == AUTHORS_FILES["hdrcnn-compr-regularized"]


def video_weights_hint(weights: Weights) -> str | None:
    """A one-line suggestion for video when the weights are not temporally regularised: the
    first regularised name that is installed, else how to get the authors' file."""
    from .weights import VIDEO_WEIGHT_NAMES, WeightFileError, resolve

    if is_temporally_regularised(weights):
        return None
    for name in VIDEO_WEIGHT_NAMES:
        try:
            resolve(name)
        except WeightFileError:
            continue
        return (
            f"hint: these weights are not temporally regularised and may flicker on video; "
            f"`--params {name}` flickers less"
        )
    name = VIDEO_WEIGHT_NAMES[-1]
    return (
        f"hint: these weights are not temporally regularised and may flicker on video; "
        f"`--params {name}` flickers less (`hdrcnn weights download {name}` installs it)"
    )


def preview_video_path(path: str | os.PathLike, out_dir: Path) -> Path:
    """A relative preview-video path lies in the output folder; an absolute one is the
    user's explicit choice."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else out_dir / p


@dataclass
class SequenceReport:
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (frame name, message)
    seconds: float = 0.0
    stability: object | None = None  # metrics.TemporalStability
    stability_note: str = ""  # why there is no figure, or what it leaves out
    preview_video: Path | None = None  # written
    preview_video_note: str = ""  # why it was not
    stale_temps_removed: int = 0


def _rgb(a: np.ndarray) -> np.ndarray:
    """Colour channels only (alpha dropped, grey repeated), for the stability measure."""
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[..., None]
    return a[..., :3] if a.shape[-1] >= 3 else np.repeat(a[..., :1], 3, axis=-1)


def input_stems(paths: Iterable[Path]) -> tuple[tuple[str, ...], list[str]]:
    """Distinct output stems from input file names, and a warning per stem they share.

    `photo.jpg` -> `photo`; inputs sharing a stem (`photo.jpg`, `photo.png`) get their
    extension added (`photo_jpg`, `photo_png`), and a number where that is still taken. The
    same inputs always give the same stems, so a resumed run finds its outputs."""
    paths = [Path(p) for p in paths]
    shared: dict[str, list[Path]] = {}
    for p in paths:
        shared.setdefault(p.stem, []).append(p)
    taken = {stem for stem, group in shared.items() if len(group) == 1}
    stems, notes = [], []
    for p in paths:
        stem = p.stem
        if len(shared[stem]) > 1:
            base = f"{stem}_{p.suffix.lstrip('.')}" if p.suffix else stem
            stem, n = base, 1
            while stem in taken:
                n += 1
                stem = f"{base}_{n}"
            taken.add(stem)
        stems.append(stem)
    for stem, group in shared.items():
        if len(group) > 1:
            named = ", ".join(f"{p.name} -> {stems[paths.index(p)]}_out.exr" for p in group)
            notes.append(f"inputs share the stem '{stem}': {named}")
    return tuple(stems), notes


def output_spec(
    source, out_dir: Path, names: str = "number", **spec_options
) -> tuple[OutputSpec, list[str]]:
    """The OutputSpec for `source` under the naming `names` (see NAMINGS), and warnings."""
    if names not in NAMINGS:
        raise ValueError(f"names must be one of {', '.join(NAMINGS)}, got {names!r}")
    if names == "number":
        return OutputSpec(out_dir, **spec_options), []
    if getattr(source, "kind", None) == "video":
        return OutputSpec(out_dir, stem_prefix=f"{Path(source.path).stem}_", **spec_options), []
    frames = list(source)
    if any(getattr(f, "path", None) is None for f in frames):
        raise ValueError("names='input' needs image files (frames with a path) or a video")
    stems, notes = input_stems(f.path for f in frames)
    return OutputSpec(out_dir, stems=stems, **spec_options), notes


def run_sequence(
    source,
    out_dir: str | os.PathLike,
    *,
    weights: str | os.PathLike | Weights = "default",
    options: ReconstructOptions | None = None,
    previews: bool | None = None,
    exr_dtype: str = "half",
    compression: str = "zip",
    overwrite: bool = False,
    preview_video: str | os.PathLike | None = None,
    fps: float | None = None,
    names: str = "number",
    client=None,
    window: int | None = None,
    on_outcome: Callable[[FrameOutcome], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    tile_progress: TileProgress | None = None,
    reconstructor=None,
    measure_stability: bool = True,
) -> SequenceReport:
    """Reconstruct every frame of `source` (a `video_io.FrameSource`, or any iterable of frames
    with index, name, path and pixels) into `out_dir`.

    options:       the ReconstructOptions (checked here, before any frame is read).
    previews:      write the PNG previews; None: for image sequences yes, for videos no.
    preview_video: also write a tone-mapped preview video (relative: inside out_dir).
    names:         "number" ({k:06d}_out.exr) or "input" (photo.jpg -> photo_out.exr; a
                   video's frames {video stem}_{k:06d}); inputs sharing a stem get distinct
                   names and a warning (`on_warning`, default `warnings.warn`).
    client:        a dask.distributed Client: frames are spread over its workers.
    window:        frames in flight on the cluster (default 2 per worker).
    on_outcome:    called with each FrameOutcome, in frame order (progress, printing).
    measure_stability: compute the temporal-stability figure (off for unrelated photos).
    """
    from .metrics import TemporalStabilityAccumulator
    from .reconstruct import Reconstructor

    options = ReconstructOptions.of(options)
    out_dir = Path(out_dir).absolute()  # workers may not share this process's folder
    if previews is None:
        previews = getattr(source, "kind", "images") != "video"
    spec, naming_warnings = output_spec(
        source,
        out_dir,
        names,
        previews=previews,
        exr_dtype=exr_dtype,
        compression=compression,
    )
    for message in naming_warnings:
        (on_warning or _warn)(message)
    out_dir.mkdir(parents=True, exist_ok=True)
    if reconstructor is None and client is None:
        reconstructor = Reconstructor(weights, options)
    loaded = reconstructor.weights if reconstructor is not None else load_weights(weights)
    spec = dataclasses.replace(spec, weights_name=Path(loaded.source).name)
    report = SequenceReport(stale_temps_removed=remove_stale_temps(out_dir))

    if client is None:
        backend = PlainBackend(reconstructor, tile_progress)
    else:
        from .dask_runner import ClusterBackend

        backend = ClusterBackend(client, loaded, window)
    outcomes = backend.outcomes(source, options, spec, overwrite)

    accumulator = TemporalStabilityAccumulator() if measure_stability else None
    figures = _OrderedFigures(
        accumulator,
        out_dir,
        preview_video,
        fps or getattr(source, "fps", None) or DEFAULT_PREVIEW_FPS,
    )
    start = time.perf_counter()
    try:
        for outcome in outcomes:
            report.total += 1
            if outcome.status == "failed":
                report.failed.append((outcome.name, outcome.error))
            else:
                report.done += outcome.status == "done"
                report.skipped += outcome.status == "skipped"
                figures.add(outcome, spec)
            outcome.output = outcome.input_pixels = None  # nothing kept past this frame
            if on_outcome is not None:
                on_outcome(outcome)
        report.preview_video = figures.finish()
    finally:
        figures.abort()
    report.seconds = time.perf_counter() - start
    report.stale_temps_removed += remove_stale_temps(out_dir)
    report.stability, report.stability_note = figures.result(len(report.failed))
    report.preview_video_note = figures.video_note
    return report


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


class _OrderedFigures:
    """What is made from the outputs in frame order at the caller: the temporal-stability
    figure and the preview video. A problem with either (frames of different sizes) is noted
    and ends that figure; it never stops the reconstruction."""

    def __init__(self, accumulator, out_dir: Path, preview_video, fps: float):
        self.accumulator = accumulator
        self.measured = 0  # frames in the stability figure
        self.note = ""
        self.video_path = preview_video_path(preview_video, out_dir) if preview_video else None
        self.fps = fps
        self.writer = None
        self.video_note = ""

    def add(self, outcome: FrameOutcome, spec: OutputSpec) -> None:
        from .tonemap import exposure_preview

        measuring = self.accumulator is not None and not self.note
        if not measuring and self.video_path is None:
            return
        try:
            hdr = _rgb(outcome.output_hdr(spec))
        except io.ImageReadError as err:  # a skipped frame's EXR damaged since
            self.note = self.note or f"no temporal-stability figure: {err}"
            return
        if measuring:
            try:
                self.accumulator.add(hdr, _rgb(outcome.input_image()))
                self.measured += 1
            except ValueError as err:  # frames of different sizes, an unreadable input
                self.note = f"no temporal-stability figure: {err}"
        if self.video_path is not None:
            try:
                if self.writer is None:
                    from .video_io import PreviewVideoWriter

                    self.writer = PreviewVideoWriter(self.video_path, self.fps)
                self.writer.write(exposure_preview(hdr))
            except (ValueError, OSError) as err:
                self.video_note = f"no preview video: {err}"
                self.abort()
                self.writer = self.video_path = None

    def finish(self) -> Path | None:
        if self.writer is None:
            return None
        self.writer.close()
        return self.video_path

    def abort(self) -> None:
        """After finish() this does nothing; after an error it leaves no video behind."""
        if self.writer is not None:
            self.writer.abort()

    def result(self, failed: int):
        if self.accumulator is None:
            return None, ""
        if self.note:
            return None, self.note
        if self.measured < 2:
            return None, "fewer than 2 frames; no temporal-stability figure"
        return self.accumulator.result(), (f"{failed} failed frame(s) left out" if failed else "")


# -- arrays ---------------------------------------------------------------------------------------
def reconstruct_stack(
    stack: np.ndarray,
    weights: str | os.PathLike | Weights = "default",
    client=None,
    *,
    window: int | None = None,
    options: ReconstructOptions | None = None,
    **fields,
) -> np.ndarray:
    """Reconstruct every frame of a (T, H, W, C) stack; returns float32 (T, H', W', C').

    With a dask.distributed `client` the frames are spread over its workers (each loads the
    model once); the result is the same as without. `options` and/or its fields as keywords
    (device, gamma, scaling, ...) are those of `napari_hdrcnn.reconstruct`. A frame that
    cannot be reconstructed raises its error.
    """
    options = ReconstructOptions.of(options, **fields)
    stack = np.asarray(stack)
    if stack.ndim < 3:
        raise InputImageError(f"a stack needs shape (T, H, W[, C]), got {stack.shape}")
    from .video_io import Frame

    frames = (Frame(index=i, name=f"frame {i}", pixels=stack[i]) for i in range(len(stack)))
    if client is None:
        from .reconstruct import get_reconstructor

        backend = PlainBackend(get_reconstructor(weights, options))
    else:
        from .dask_runner import ClusterBackend

        backend = ClusterBackend(client, load_weights(weights), window)
    outcomes = backend.outcomes(frames, options, None)
    out = None
    for outcome in outcomes:
        if outcome.status == "failed":
            raise outcome.exception or InputImageError(outcome.error)
        if out is None:
            out = np.empty((stack.shape[0], *outcome.output.shape), np.float32)
        if outcome.output.shape != out.shape[1:]:
            raise InputImageError(
                f"{outcome.name}: output shape {outcome.output.shape} differs"
                f" from the first frame's {out.shape[1:]}"
            )
        out[outcome.number - 1] = outcome.output
    if out is None:  # an empty stack
        return np.empty(stack.shape, np.float32)
    return out
