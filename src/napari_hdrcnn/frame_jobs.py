"""One frame as a job, the same on every backend: where its outputs go (`OutputSpec`), the
function that reconstructs and writes it (`reconstruct_frame`), the skip-if-done rule, and what
became of it (`FrameOutcome`).

Two backends run the jobs behind one signature, `outcomes(frames, options, spec, overwrite)`,
and hand back `FrameOutcome`s in frame order: `PlainBackend` (here: one frame after the other
in this process) and `dask_runner.ClusterBackend` (a Dask cluster). Both call
`reconstruct_frame`, so both give the same files bit for bit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from . import io
from .options import ReconstructOptions
from .reconstruct import InputImageError

if TYPE_CHECKING:
    from .video_io import Frame

OUTPUT_SUFFIXES = ("_out.exr", "_in.png", "_out.png")
# A temp file atomic_output leaves behind when its process is killed mid-write.
_STALE_TEMP = re.compile(r"^\..+(?:_out\.exr|_in\.png|_out\.png)\.[^.]+\.tmp$")
# Errors that come from the frame itself: retrying them elsewhere cannot help.
FRAME_ERRORS = (io.ImageReadError, InputImageError, ValueError)

TileProgress = Callable[[str, int, int], None]


# -- outputs --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutputSpec:
    """Where and how a frame's outputs are written."""

    out_dir: Path
    previews: bool = True  # also {k:06d}_in.png and {k:06d}_out.png
    exr_dtype: str = "half"
    compression: str = "zip"
    weights_name: str = ""  # recorded in each EXR header
    stems: tuple[str, ...] = ()  # names="input": frame k's file stem is stems[k - 1]
    stem_prefix: str = ""  # before {k:06d} when there are no stems (a video's name)

    def stem(self, number: int) -> str:
        if self.stems:
            return self.stems[number - 1]
        return f"{self.stem_prefix}{number:06d}"

    def exr_path(self, number: int) -> Path:
        return self.out_dir / f"{self.stem(number)}_out.exr"

    def paths(self, number: int) -> list[Path]:
        names = OUTPUT_SUFFIXES if self.previews else OUTPUT_SUFFIXES[:1]
        return [self.out_dir / f"{self.stem(number)}{s}" for s in names]

    def is_done(self, number: int) -> bool:
        """All of the frame's outputs exist (each was written whole, atomically)."""
        return all(p.is_file() for p in self.paths(number))

    def as_written(self, hdr: np.ndarray) -> np.ndarray:
        """The pixels the EXR holds: half precision reads back exactly as np.float16."""
        return hdr.astype(np.float16) if self.exr_dtype == "half" else hdr.astype(np.float32)


def remove_stale_temps(out_dir: Path) -> int:
    """Delete temp files of frame outputs left by a killed process; returns how many."""
    removed = 0
    if out_dir.is_dir():
        for p in out_dir.iterdir():
            if _STALE_TEMP.match(p.name):
                try:
                    p.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


# -- one frame ----------------------------------------------------------------------------------
def reconstruct_frame(
    reconstructor,
    image: np.ndarray,
    number: int,
    name: str,
    options: ReconstructOptions,
    spec: OutputSpec | None,
    progress=None,
) -> np.ndarray:
    """Reconstruct one frame; with a spec, write its outputs and return the HDR as written
    (see `OutputSpec.as_written`), without one return the float32 HDR."""
    from .tonemap import exposure_preview

    result = reconstructor.run(image, options, progress=progress)
    if spec is None:
        return result.hdr
    stem = spec.out_dir / spec.stem(number)
    if spec.previews:
        io.write_png(f"{stem}_in.png", exposure_preview(result.ldr, linear=False))
        io.write_png(f"{stem}_out.png", exposure_preview(result.hdr[..., :3]))
    # The EXR last: it is the frame's main output, and the resume check looks for all three.
    io.write_exr(
        spec.exr_path(number),
        result.hdr,
        dtype=spec.exr_dtype,
        compression=spec.compression,
        header={"hdrcnn_source": name, "hdrcnn_weights": spec.weights_name},
    )
    return spec.as_written(result.hdr)


def describe_error(name: str, err: BaseException) -> str:
    """The error's message, naming the frame unless the message already does."""
    msg = str(err) or type(err).__name__
    return msg if name in msg else f"{name}: {msg}"


@dataclass
class FrameOutcome:
    """What became of one frame, handed back in frame order."""

    number: int  # 1-based, as in the output names
    name: str
    status: str  # "done", "skipped" (outputs already there) or "failed"
    frame: Frame | None = field(repr=False, default=None)
    output: np.ndarray | None = field(repr=False, default=None)  # as written (or float32)
    error: str = ""
    exception: BaseException | None = field(repr=False, default=None)  # behind `error`
    input_pixels: np.ndarray | None = field(repr=False, default=None)

    def output_hdr(self, spec: OutputSpec | None) -> np.ndarray:
        """The output as float32; a skipped frame's is read back from its EXR."""
        if self.output is None:
            if spec is None:
                raise ValueError(f"{self.name}: no output to show")
            return io.read_image(spec.exr_path(self.number))
        return self.output.astype(np.float32)

    def input_image(self) -> np.ndarray:
        if self.input_pixels is None:
            if self.frame is None:
                raise ValueError(f"{self.name}: no frame to read")
            self.input_pixels = self.frame.read()
        return self.input_pixels


def skipped(frame, spec: OutputSpec | None, overwrite: bool) -> FrameOutcome | None:
    """The outcome of a frame whose outputs all exist already (resume), else None."""
    number = frame.index + 1
    if spec is not None and not overwrite and spec.is_done(number):
        return FrameOutcome(number, frame.name, "skipped", frame)
    return None


class Backend(Protocol):
    def outcomes(
        self,
        frames: Iterable,
        options: ReconstructOptions,
        spec: OutputSpec | None,
        overwrite: bool = False,
    ) -> Iterator[FrameOutcome]:
        """Every frame's outcome, in frame order, with a bounded number of frames in flight."""
        ...


@dataclass
class PlainBackend:
    """Frames reconstructed one after the other in this process."""

    reconstructor: object
    tile_progress: TileProgress | None = None

    def outcomes(
        self,
        frames: Iterable,
        options: ReconstructOptions,
        spec: OutputSpec | None,
        overwrite: bool = False,
    ) -> Iterator[FrameOutcome]:
        for frame in frames:
            skip = skipped(frame, spec, overwrite)
            if skip is not None:
                yield skip
                continue
            number = frame.index + 1
            progress = None
            if self.tile_progress is not None:

                def progress(done, total, _name=frame.name, _report=self.tile_progress):
                    _report(_name, done, total)

            try:
                image = frame.read()
                output = reconstruct_frame(
                    self.reconstructor, image, number, frame.name, options, spec, progress
                )
            except Exception as err:  # a bad frame must not stop the sequence
                yield FrameOutcome(
                    number,
                    frame.name,
                    "failed",
                    frame,
                    error=describe_error(frame.name, err),
                    exception=err,
                )
                continue
            yield FrameOutcome(number, frame.name, "done", frame, output, input_pixels=image)
