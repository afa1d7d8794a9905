"""Frames in (a video file or an image sequence) and a tone-mapped preview video out.

Videos are decoded by the ffmpeg that `imageio-ffmpeg` ships, one frame at a time: iterating a
`FrameSource` never holds more than the frame being handed out, whatever the video's length.
Image sequences are listed, not read: their `Frame`s carry a path, so a worker process can read
the file itself (`Frame.read`).

Videos are untrusted input like images: a missing, truncated or damaged file, or one without a
video stream, gives an `ImageReadError` naming the file and the problem. Before decoding, the
container is read once without decoding (`-c copy`, fast: no pixels are made); that pass counts
the frames and refuses files whose demuxer reports errors (a truncated mp4 with its index in
front decodes "successfully" up to the cut, so ffmpeg's own exit status is not enough).
The first video stream that is not a cover picture is decoded, upright (ffmpeg applies a
phone's rotation flag), to 8-bit RGB; each decoded picture once (no frames are duplicated or
dropped to keep a constant rate). PQ/HLG (HDR) videos are decoded without tone mapping, with a
warning.

Videos written here (`PreviewVideoWriter`, `write_test_video`) appear atomically: ffmpeg
writes a hidden temp file beside the target, which is renamed over it only when ffmpeg
finished without error.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .io import (
    ImageReadError,
    ImageWriteError,
    is_hdr_file,
    is_image_file,
    list_images,
    new_file_mode,
    read_image,
)

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".avi",
        ".webm",
        ".wmv",
        ".flv",
        ".mpg",
        ".mpeg",
        ".m2v",
        ".ts",
        ".mts",
        ".m2ts",
        ".3gp",
        ".ogv",
        ".mxf",
        ".y4m",
    }
)

# Containers a preview can be written to: extension -> (ffmpeg muxer, default codec, codecs
# that container takes). H.264 in mp4/mov/mkv plays nearly everywhere; webm wants VP9.
_H264 = ("libx264", "libx264rgb")
PREVIEW_CONTAINERS = {
    ".mp4": ("mp4", "libx264", _H264),
    ".m4v": ("mp4", "libx264", _H264),
    ".mov": ("mov", "libx264", _H264),
    ".mkv": ("matroska", "libx264", _H264 + ("libvpx-vp9", "ffv1")),
    ".webm": ("webm", "libvpx-vp9", ("libvpx-vp9",)),
}
DEFAULT_CRF = {"libx264": 20, "libx264rgb": 20, "libvpx-vp9": 32}  # visually good previews
_PRINTF_FIELD = re.compile(r"%(0?)(\d*)d")
_GLOB_CHARS = re.compile(r"[*?\[]")
_STDERR_LINES = 4  # ffmpeg lines quoted in an error message
HDR_TRANSFERS = ("smpte2084", "arib-std-b67")  # PQ and HLG, as ffmpeg names them


def is_video(path: str | os.PathLike) -> bool:
    """Whether `path` names a video file, by its extension."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


class _QuietRotation(logging.Filter):
    """imageio-ffmpeg logs a warning for every rotated (portrait phone) video, where the
    decoded frame size is the stored one turned by 90 degrees, as it should be."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("The frame size for reading")


def _read_frames(path: Path, **kwargs):
    """`imageio_ffmpeg.read_frames` (a generator: metadata first, then frames as bytes)."""
    import imageio_ffmpeg

    logger = logging.getLogger("imageio_ffmpeg")
    if not any(isinstance(f, _QuietRotation) for f in logger.filters):
        logger.addFilter(_QuietRotation())
    return imageio_ffmpeg.read_frames(str(path), **kwargs)


# -- frames -------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Frame:
    """One frame of a `FrameSource`: a decoded video frame (`pixels`) or an image file (`path`).

    Small and picklable, so it can be sent to a worker; a path frame is read there."""

    index: int  # 0-based position in the source
    name: str  # the image file's name, or "<video name>#<index>"
    path: Path | None = None  # image-sequence frames
    pixels: np.ndarray | None = None  # video frames: uint8 (H, W, 3), read-only

    def read(self) -> np.ndarray:
        """The frame's pixels: uint8 (H, W, 3) for video frames (read-only: copy before
        changing it), or the image as `io.read_image` gives it. HDR files (EXR, Radiance)
        are refused, as `hdrcnn predict` refuses them: the network takes 8/16-bit photos."""
        if self.pixels is not None:
            return self.pixels
        if self.path is None:
            raise ValueError(f"frame {self.name}: neither pixels nor a path")
        if is_hdr_file(self.path):
            raise ImageReadError(
                f"{self.path}: already an HDR image; predict takes 8/16-bit photos"
            )
        return read_image(self.path)


class FrameSource:
    """The frames of a video or an image sequence, made by `open_frames`; iterate it (again
    and again if needed) to get `Frame`s in order.

    path:  the video file, image file or folder, or the pattern as given.
    kind:  "video" or "images".
    count: number of frames, None if unknown (`len()` raises TypeError then). For a video it is
           the container's frame count; should decoding deliver another number, a warning
           says so and `count` is corrected after the iteration.
    fps:   frames per second: the video's, the one given to `open_frames` (which overrides a
           video's), else None.
    size:  (width, height) of the (first) frame, None if unknown without decoding.
    """

    def __init__(
        self,
        path: Path,
        kind: str,
        count: int | None,
        fps: float | None,
        size: tuple[int, int] | None,
        files: list[Path] | None = None,
        stream: int = 0,
    ):
        self.path = path
        self.kind = kind
        self.count = count
        self.fps = fps
        self.size = size
        self._files = files
        self._stream = stream  # index of the decoded stream in a video file

    def __len__(self) -> int:
        if self.count is None:
            raise TypeError(f"{self.path}: number of frames unknown")
        return self.count

    def __repr__(self) -> str:
        return (
            f"FrameSource({str(self.path)!r}, kind={self.kind!r}, count={self.count}, "
            f"fps={self.fps}, size={self.size})"
        )

    def __iter__(self) -> Iterator[Frame]:
        """Frames in order. For a video one ffmpeg process decodes them; it is stopped when the
        iteration ends, raises, or is abandoned (the generator is closed when dropped; call
        `close()` on it to stop at once elsewhere than CPython)."""
        if self._files is not None:
            return (Frame(index=i, name=p.name, path=p) for i, p in enumerate(self._files))
        return self._video_frames()

    def _video_frames(self) -> Iterator[Frame]:
        # passthrough: each decoded picture once, as the container holds them (no frames
        # duplicated or dropped to reach a constant rate)
        reader = _read_frames(
            self.path,
            pix_fmt="rgb24",
            output_params=["-map", f"0:{self._stream}", "-fps_mode", "passthrough"],
        )
        index = 0
        try:
            try:
                meta = next(reader)
            except (OSError, RuntimeError, StopIteration, IndexError) as err:
                raise ImageReadError(f"{self.path}: cannot open video ({_last_line(err)})") from err
            width, height = meta["size"]
            while True:
                try:
                    raw = next(reader)
                except StopIteration:
                    break
                except (OSError, RuntimeError) as err:
                    raise ImageReadError(
                        f"{self.path}: cannot decode frame {index} ({_last_line(err)})"
                    ) from err
                pixels = np.frombuffer(raw, np.uint8).reshape(height, width, 3)
                del raw
                yield Frame(index=index, name=f"{self.path.name}#{index}", pixels=pixels)
                del pixels  # hold no frame while the consumer asks for the next
                index += 1
        finally:
            reader.close()  # stops ffmpeg (no-op when it has ended)
        if self.count is not None and index != self.count:
            warnings.warn(
                f"{self.path}: decoded {index} frames, the container lists {self.count}",
                RuntimeWarning,
                stacklevel=2,
            )
        self.count = index


def _last_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[-1] if lines else type(err).__name__


# -- opening ------------------------------------------------------------------------------------
def open_frames(path: str | os.PathLike, *, fps: float | None = None) -> FrameSource:
    """The frames of `path`:

    - a video file (see VIDEO_EXTENSIONS), decoded to uint8 RGB;
    - an image file (one frame);
    - a folder of images (not recursive, no hidden files), in natural order: frame2 before
      frame10;
    - a printf pattern of an image sequence, "shots/f_%04d.png" (ffmpeg's syntax; frames in
      numeric order; gaps allowed);
    - a glob pattern, "shots/*.png" (natural order; only image files count).

    `fps` sets the frame rate (image sequences have none; for a video it overrides the
    container's). Errors are `ImageReadError`s naming the path and the problem.
    """
    if fps is not None and not (fps > 0 and np.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps}")
    path = Path(path)
    if path.is_file():
        if is_video(path):
            return _open_video(path, fps)
        if not is_image_file(path):
            raise ImageReadError(
                f"{path}: not a video or image file (videos: {', '.join(sorted(VIDEO_EXTENSIONS))})"
            )
        return _image_source(path, [path], fps)
    if path.is_dir():
        return _image_source(path, natural_sorted(_folder_images(path)), fps)
    if _PRINTF_FIELD.search(path.name):
        return _image_source(path, _printf_files(path), fps)
    if _GLOB_CHARS.search(str(path)):
        return _image_source(path, _glob_files(path), fps)
    raise ImageReadError(f"{path}: no such file or folder")


def natural_key(path: Path) -> tuple:
    """Sort key that orders embedded numbers by value: frame2 < frame10."""
    parts = re.split(r"(\d+)", str(path))
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p.lower()) for p in parts)


def natural_sorted(paths: Iterable[Path]) -> list[Path]:
    return sorted(paths, key=natural_key)


def _folder_images(folder: Path) -> list[Path]:
    try:
        return list_images(folder)
    except ImageReadError:
        videos = sorted(p.name for p in folder.iterdir() if is_video(p) and p.is_file())
        if videos:  # a folder is an image sequence; videos are given one by one
            raise ImageReadError(
                f"{folder}: no images in this folder, only videos "
                f"({', '.join(videos[:3])}); give a video file itself"
            ) from None
        raise


def _image_source(path: Path, files: list[Path], fps: float | None) -> FrameSource:
    return FrameSource(path, "images", len(files), fps, _image_size(files[0]), files=files)


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the header where Pillow can read one cheaply; None otherwise."""
    if is_hdr_file(path):
        return None
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.size
    except Exception:  # unreadable headers are reported when the frame is read
        return None


def _printf_files(pattern: Path) -> list[Path]:
    fields = _PRINTF_FIELD.findall(pattern.name.replace("%%", ""))
    if len(fields) != 1:
        raise ImageReadError(f"{pattern}: a sequence pattern needs exactly one %d field")
    folder = pattern.parent
    if not folder.is_dir():
        raise ImageReadError(f"{pattern}: no such folder {folder}")
    regex = re.compile(_printf_regex(pattern.name))
    numbered = []
    for p in folder.iterdir():
        m = regex.fullmatch(p.name)
        if m and p.is_file():
            numbered.append((int(m.group(1)), p))
    if not numbered:
        raise ImageReadError(f"{pattern}: no files match this pattern")
    files = [p for _, p in sorted(numbered)]
    _check_images(pattern, files)
    return files


def _printf_regex(name: str) -> str:
    """ "f_%04d.png" -> r"f_(\\d{4,})\\.png" as ffmpeg reads it: zero-padded to at least the
    width; "%d" takes any number of digits; "%%" is a literal %."""
    out = []
    for i, chunk in enumerate(name.split("%%")):
        if i:
            out.append("%")
        pos = 0
        for m in _PRINTF_FIELD.finditer(chunk):
            out.append(re.escape(chunk[pos : m.start()]))
            zero, width = m.groups()
            out.append(rf"(\d{{{int(width)},}})" if zero and width else r"(\d+)")
            pos = m.end()
        out.append(re.escape(chunk[pos:]))
    return "".join(out)


def _glob_files(pattern: Path) -> list[Path]:
    matches = [Path(p) for p in glob.glob(str(pattern))]
    files = natural_sorted(p for p in matches if p.is_file() and is_image_file(p))
    if not files:
        what = "no image files" if matches else "no files"
        raise ImageReadError(f"{pattern}: {what} match this pattern")
    return files


def _check_images(pattern: Path, files: list[Path]) -> None:
    others = [p.name for p in files if not is_image_file(p)]
    if others:
        raise ImageReadError(f"{pattern}: not image files: {', '.join(others[:3])}")


# -- probing a video ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _VideoStream:
    index: int  # the stream's index in the file ("-map 0:<index>")
    count: int  # frames (packets) in the stream
    fps: float | None


def _open_video(path: Path, fps: float | None) -> FrameSource:
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file")
    stream = _probe_video(path)
    reader = _read_frames(path, output_params=["-map", f"0:{stream.index}"])
    try:
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration, IndexError) as err:
        raise ImageReadError(f"{path}: cannot open video ({_last_line(err)})") from err
    finally:
        reader.close()
    size = tuple(int(v) for v in meta["size"])  # as displayed: rotation applied
    if any(t in meta.get("pix_fmt", "") for t in HDR_TRANSFERS):
        warnings.warn(
            f"{path}: an HDR video (PQ/HLG); its frames are decoded to 8-bit RGB "
            "without tone mapping and will look flat",
            RuntimeWarning,
            stacklevel=3,
        )
    return FrameSource(path, "video", stream.count, fps or stream.fps, size, stream=stream.index)


def _probe_video(path: Path) -> _VideoStream:
    """The file's first video stream that is not a cover picture, and its frame count read
    from the container without decoding. Refuses a file ffmpeg cannot open, one without a
    video stream, and one whose demuxer reports errors (truncated or damaged)."""
    header, _ = _run_ffmpeg(path, ["-i", str(path)])  # no output named: only the header
    streams = re.findall(r"Stream #0:(\d+)\S*: Video: (.*)$", header, re.M)
    if "Input #0" not in header:
        raise ImageReadError(f"{path}: cannot read video: {_problem(header, path)}")
    moving = [(int(i), line) for i, line in streams if "(attached pic)" not in line]
    if not moving:
        cover = " (only a cover picture)" if streams else ""
        raise ImageReadError(f"{path}: no video stream in this file{cover}")
    index, line = moving[0]
    rate = re.search(r" ([0-9.]+) fps", line)
    log, progress = _run_ffmpeg(
        path,
        [
            "-i",
            str(path),
            "-map",
            f"0:{index}",
            "-c",
            "copy",
            "-f",
            "null",
            "-progress",
            "pipe:1",
            "-",
        ],
    )
    errors = _ffmpeg_messages(log, path)
    if errors:
        raise ImageReadError(f"{path}: cannot read video: {'; '.join(errors[-_STDERR_LINES:])}")
    counts = re.findall(r"^frame=\s*(\d+)", progress, re.M)
    if not counts or int(counts[-1]) == 0:
        raise ImageReadError(f"{path}: the video stream holds no frames")
    fps = float(rate.group(1)) if rate else None
    return _VideoStream(index=index, count=int(counts[-1]), fps=fps or None)


def _run_ffmpeg(path: Path, args: list[str]) -> tuple[str, str]:
    """(log with a [level] tag on each line, stdout) of one ffmpeg run over `path`."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "level+info", *args]
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ImageReadError(f"{path}: cannot run ffmpeg to read the video ({err})") from err
    return done.stderr.decode(errors="replace"), done.stdout.decode(errors="replace")


def _problem(log: str, path: Path) -> str:
    return "; ".join(_ffmpeg_messages(log, path)[-_STDERR_LINES:]) or "not a video ffmpeg reads"


def _ffmpeg_messages(log: str | bytes, path: Path) -> list[str]:
    """ffmpeg's error lines, without "[in#0 @ 0x...]" prefixes and level tags, and with the
    file's path left out (the message names it once). A log without level tags (from
    "-v error") counts as all errors."""
    if isinstance(log, bytes):
        log = log.decode(errors="replace")
    lines = []
    for line in log.splitlines():
        level = re.search(r"\[(panic|fatal|error|warning|info|verbose|debug|trace)\] ", line)
        if level and level.group(1) not in ("panic", "fatal", "error"):
            continue
        line = re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip()
        if line.startswith(
            ("Error opening input file", "Error opening output file", "At least one output file")
        ):
            continue  # summaries ffmpeg repeats after the real message
        line = line.replace(str(path), "the file")
        if line and line not in lines:
            lines.append(line)
    return lines


# -- writing ------------------------------------------------------------------------------------
def _needs_even_size(pix_fmt: str) -> bool:
    """Chroma-subsampled formats (4:2:0, 4:2:2) need even frame sizes."""
    return bool(re.search(r"(420|422|411|nv1[26]|nv21)", pix_fmt))


class PreviewVideoWriter:
    """Write uint8 RGB frames to a video, atomically; use it as a context manager.

    The first frame fixes the size; odd sizes are padded to even by repeating the last row or
    column (yuv420p needs even sizes); a later frame of another size raises ValueError. Frames
    go to a hidden temp file beside `path`, renamed over it when the block ends cleanly (or on
    `close()`); when the block raises, or on `abort()`, the temp file is deleted and `path` is
    not touched. The extension chooses the container: .mp4, .m4v, .mov, .mkv (H.264 by
    default) or .webm (VP9). `crf`: constant quality (lower is better; codec's default here
    when None); `preset`: x264 speed preset.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        *,
        crf: int | None = None,
        codec: str | None = None,
        pix_fmt: str = "yuv420p",
        preset: str | None = "medium",
        extra_args: Iterable[str] = (),
    ):
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in PREVIEW_CONTAINERS:
            raise ValueError(
                f"{self.path}: cannot write a video with extension {ext!r}; "
                f"use one of {', '.join(PREVIEW_CONTAINERS)}"
            )
        muxer, default_codec, codecs = PREVIEW_CONTAINERS[ext]
        self.codec = codec or default_codec
        if self.codec not in codecs:
            raise ValueError(
                f"{self.path}: codec {self.codec} does not go in a {ext} file "
                f"(it takes {', '.join(codecs)})"
            )
        if not (fps > 0 and np.isfinite(fps)):
            raise ValueError(f"{self.path}: fps must be a positive number, got {fps}")
        self.fps = float(fps)
        self.pix_fmt = pix_fmt
        self.muxer = muxer
        self.crf = DEFAULT_CRF.get(self.codec) if crf is None else crf
        self.preset = preset if self.codec.startswith("libx264") else None
        self.extra_args = list(extra_args)
        self.frames_written = 0
        self.size: tuple[int, int] | None = None  # (width, height) of the frames given
        self._padded_size: tuple[int, int] | None = None
        self._process: subprocess.Popen | None = None
        self._stderr = None
        self._tmp: Path | None = None
        self._closed = False

    def __enter__(self) -> PreviewVideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 RGB (H, W, 3) frame."""
        if self._closed:
            raise ValueError(f"{self.path}: writer already closed")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(
                f"{self.path}: frames must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}"
            )
        height, width = frame.shape[:2]
        if self.size is None:
            if not width or not height:
                raise ValueError(f"{self.path}: empty frame {frame.shape}")
            self.size = (width, height)
            self._start()
        elif (width, height) != self.size:
            raise ValueError(
                f"{self.path}: frame {self.frames_written} is {width}x{height}, "
                f"the video is {self.size[0]}x{self.size[1]}"
            )
        pw, ph = self._padded_size
        if (pw, ph) != (width, height):  # a padded copy; the caller's frame stays as it is
            frame = np.pad(frame, ((0, ph - height), (0, pw - width), (0, 0)), mode="edge")
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).data)
        except (BrokenPipeError, OSError) as err:
            self._process.wait()
            message = self._failure(f"ffmpeg stopped ({err})")
            self.abort()
            raise ImageWriteError(message) from err
        self.frames_written += 1

    def _start(self) -> None:
        width, height = self.size
        if _needs_even_size(self.pix_fmt):
            width, height = width + width % 2, height + height % 2
        self._padded_size = (width, height)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        os.close(fd)
        self._tmp = Path(tmp)
        cmd = [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostats",
            "-v",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{width}x{height}",
            "-r",
            str(Fraction(self.fps).limit_denominator(100000)),
            "-i",
            "pipe:0",
            "-an",
            "-c:v",
            self.codec,
            "-pix_fmt",
            self.pix_fmt,
        ]
        if self.crf is not None:
            cmd += ["-crf", str(self.crf)]
            if self.codec == "libvpx-vp9":
                cmd += ["-b:v", "0"]  # constant quality mode
        if self.preset:
            cmd += ["-preset", self.preset]
        if self.muxer in ("mp4", "mov"):
            cmd += ["-movflags", "+faststart"]  # playable while downloading
        cmd += self.extra_args + ["-f", self.muxer, str(self._tmp)]
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: ffmpeg never blocks on it
        try:
            self._process = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr
            )
        except OSError as err:
            self.abort()
            raise ImageWriteError(f"{self.path}: cannot run ffmpeg ({err})") from err

    def close(self) -> None:
        """Finish the video and move it into place; ImageWriteError if ffmpeg failed,
        ValueError if no frame was written (no file is made then)."""
        if self._closed:
            return
        if self._process is None:
            self.abort()
            raise ValueError(f"{self.path}: no frames written; no video made")
        try:
            self._process.stdin.close()
        except OSError:
            pass  # ffmpeg already gone; its exit status tells why
        returncode = self._process.wait()
        if returncode != 0:
            message = self._failure(f"ffmpeg exit status {returncode}")
            self.abort()
            raise ImageWriteError(message)
        try:
            os.chmod(self._tmp, new_file_mode())
        except OSError:
            pass
        try:
            os.replace(self._tmp, self.path)
        except OSError as err:
            self.abort()
            raise ImageWriteError(f"{self.path}: cannot write video ({err})") from err
        self._finish()

    def abort(self) -> None:
        """Stop ffmpeg and delete the temp file; `path` is left as it was."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._tmp is not None:
            try:
                self._tmp.unlink()
            except FileNotFoundError:
                pass
        self._finish()

    def _finish(self) -> None:
        self._closed = True
        if self._process is not None and self._process.stdin and not self._process.stdin.closed:
            try:
                self._process.stdin.close()
            except OSError:
                pass
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _failure(self, what: str) -> str:
        self._stderr.seek(0)
        lines = _ffmpeg_messages(self._stderr.read(), self._tmp)
        detail = "; ".join(lines[-_STDERR_LINES:])
        return f"{self.path}: cannot write video: {what}" + (f": {detail}" if detail else "")

    def __del__(self):  # an abandoned writer must not leave ffmpeg or a temp file behind
        if not getattr(self, "_closed", True):
            try:
                self.abort()
            except Exception:
                pass


def write_test_video(
    path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float, lossless: bool = True
) -> Path:
    """Write uint8 RGB frames as a small synthetic video (for tests, benchmarks and docs).

    lossless=True: H.264 in RGB at quantiser 0 (libx264rgb), which decodes to exactly the
    frames written (.mp4, .m4v, .mov or .mkv). lossless=False: an ordinary yuv420p H.264 video,
    like a phone's (odd sizes padded to even)."""
    if lossless:
        options = dict(codec="libx264rgb", pix_fmt="rgb24", crf=0, preset="ultrafast")
    else:
        options = dict(codec="libx264", pix_fmt="yuv420p", preset="ultrafast")
    with PreviewVideoWriter(path, fps, **options) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)
