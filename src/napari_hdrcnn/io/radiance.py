"""Radiance RGBE (.hdr) in: imagecodecs' decoder for the common files, a numpy decoder here for
what it does not read.

A mantissa m with exponent e gives m * 2**(e - 136) (the convention of OpenCV, stb_image and
imagecodecs; Radiance's own tools add 0.5 to m). The header (FORMAT, EXPOSURE, the resolution
line, the size guard) is always parsed here.

Which decoder: imagecodecs (Bruce Walter's rgbe.c, about 25 times faster) reads files stored
top row first, left to right (-Y N +X M, what every common writer produces) whose first
scanline is new-style RLE. The decoder here reads the rest, which rgbe.c does not: the other
seven orientations, and flat or old-style RLE scanlines (a pixel (1, 1, 1, n) repeating the
previous one), which rgbe.c would take for pixels. A file that the library fails on (it also
refuses bodies it does not consume exactly), or whose decoded pixels include one that an
old-style RLE marker would have become (grey with a power-of-two value; real pixels rarely
are), is decoded here again, so the result never depends on which decoder ran.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import MAX_PIXELS, ImageReadError, check_readable

RADIANCE_HEADER_LIMIT = 1 << 16


@dataclass
class RadianceHeader:
    exposure: float  # product of EXPOSURE lines (1.0 without)
    variables: dict  # the other NAME=value lines
    data_offset: int


def read_radiance(path: str | os.PathLike, *, apply_exposure: bool = False) -> np.ndarray:
    """Read a Radiance RGBE (.hdr) file to float32 linear RGB (H, W, 3).

    EXPOSURE lines are not applied by default (as OpenCV and most viewers do), since files in
    the wild rarely keep the pixels/exposure convention consistent; `apply_exposure=True`
    divides by their product to get Radiance's original radiance values.
    """
    path = Path(path)
    check_readable(path)
    data = path.read_bytes()
    header = _radiance_header(data, path)
    res_line = data[header.data_offset :].split(b"\n", 1)[0]
    axes = _radiance_resolution(res_line, path)
    body_start = header.data_offset + len(res_line) + 1
    (sign1, axis1, n1), (sign2, axis2, n2) = axes
    rgb = None
    if (sign1, axis1, sign2, axis2) == ("-", "Y", "+", "X"):
        rgb = _decode_with_imagecodecs(data[body_start:], n1, n2)
    if rgb is None:
        rgb = _decode_here(data[body_start:], axes, path)
    if apply_exposure and header.exposure != 1.0:
        rgb /= np.float32(header.exposure)
    return np.ascontiguousarray(rgb)


def _decode_with_imagecodecs(body: bytes, height: int, width: int) -> np.ndarray | None:
    """(H, W, 3) float32 from rgbe.c, or None where the decoder here must read the file."""
    if not (8 <= width <= 0x7FFF and body[:4] == bytes((2, 2, width >> 8, width & 255))):
        return None  # flat or old-style RLE from the first scanline
    import imagecodecs

    out = np.empty((height, width, 3), np.float32)
    try:
        imagecodecs.rgbe_decode(body, header=False, rle=True, out=out)
    except Exception:  # imagecodecs.RgbeError: truncated, corrupt or mixed scanlines
        return None
    grey = (out[..., 0] == out[..., 1]) & (out[..., 0] == out[..., 2]) & (out[..., 0] > 0)
    if grey.any() and np.any(np.frexp(out[..., 0][grey])[0] == 0.5):
        return None  # could be an old-style RLE marker (1, 1, 1, n) read as a pixel
    return out


def _decode_here(body: bytes, axes, path: Path) -> np.ndarray:
    (sign1, axis1, n1), (sign2, axis2, n2) = axes
    rgbe = _decode_rgbe(body, n1, n2, path)
    if (axis1 == "Y" and sign1 == "+") or (axis1 == "X" and sign1 == "-"):
        rgbe = rgbe[::-1]
    if (axis2 == "Y" and sign2 == "+") or (axis2 == "X" and sign2 == "-"):
        rgbe = rgbe[:, ::-1]
    if axis1 == "X":  # scanlines are columns
        rgbe = rgbe.transpose(1, 0, 2)
    return rgbe_to_float(rgbe)


def rgbe_to_float(rgbe: np.ndarray) -> np.ndarray:
    """(..., 4) uint8 RGBE -> (..., 3) float32: m * 2**(e - 136), 0 where e == 0."""
    return rgbe[..., :3].astype(np.float32) * _RGBE_SCALE[rgbe[..., 3]][..., None]


# 2**(e - 136) for every exponent byte; exact in float32 (subnormal at the bottom end)
_RGBE_SCALE = np.where(np.arange(256) > 0, np.ldexp(1.0, np.arange(256) - 136), 0).astype(
    np.float32
)


def _radiance_header(data: bytes, path: Path) -> RadianceHeader:
    if not data.startswith(b"#?"):
        raise ImageReadError(f"{path}: not a Radiance file (does not start with '#?')")
    end = data.find(b"\n\n", 0, RADIANCE_HEADER_LIMIT)
    if end < 0:
        raise ImageReadError(
            f"{path}: Radiance header has no end (blank line) in its first "
            f"{RADIANCE_HEADER_LIMIT} bytes"
        )
    exposure, variables = 1.0, {}
    for raw in data[:end].split(b"\n")[1:]:
        line = raw.decode("latin-1").strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = (s.strip() for s in line.split("=", 1))
        if name == "FORMAT" and value != "32-bit_rle_rgbe":
            raise ImageReadError(
                f"{path}: Radiance FORMAT {value!r} is not supported (only 32-bit_rle_rgbe)"
            )
        if name == "EXPOSURE":
            try:
                factor = float(value)
            except ValueError:
                factor = float("nan")
            if not (math.isfinite(factor) and factor > 0):
                warnings.warn(f"{path}: EXPOSURE={value!r} ignored", stacklevel=3)
                continue
            exposure *= factor
        else:
            variables[name] = value
    return RadianceHeader(exposure, variables, end + 2)


def _radiance_resolution(line: bytes, path: Path):
    tokens = line.decode("latin-1").split()
    try:
        if len(tokens) != 4:
            raise ValueError
        axes = []
        for spec, count in ((tokens[0], tokens[1]), (tokens[2], tokens[3])):
            if len(spec) != 2 or spec[0] not in "+-" or spec[1] not in "XY":
                raise ValueError
            n = int(count)
            if n <= 0:
                raise ValueError
            axes.append((spec[0], spec[1], n))
        if axes[0][1] == axes[1][1]:
            raise ValueError
    except ValueError:
        raise ImageReadError(f"{path}: bad Radiance resolution line {line[:40]!r}") from None
    if axes[0][2] * axes[1][2] > MAX_PIXELS:
        raise ImageReadError(
            f"{path}: Radiance image of {axes[0][2]}x{axes[1][2]} pixels is too large"
        )
    return axes


def _decode_rgbe(body: bytes, n_lines: int, width: int, path: Path) -> np.ndarray:
    """Scanlines -> (n_lines, width, 4) uint8. Each scanline is new-style RLE (starts with
    2, 2, width) or flat (possibly with old-style 1,1,1,n repeats). The RLE walk in Python
    only notes where each run header sits; the bytes are gathered in one vectorised step."""
    buf = body
    size = len(buf)
    out = np.empty((n_lines, width, 4), np.uint8)
    headers: list[int] = []
    note = headers.append
    rle_rows = []
    rle_possible = 8 <= width <= 0x7FFF
    pos = 0
    for y in range(n_lines):
        if (
            rle_possible
            and pos + 4 <= size
            and buf[pos] == 2
            and buf[pos + 1] == 2
            and (buf[pos + 2] << 8 | buf[pos + 3]) == width
        ):
            pos += 4
            rle_rows.append(y)
            try:
                for _ in range(4):
                    x = 0
                    while x < width:
                        code = buf[pos]
                        note(pos)
                        if code > 128:  # a run: one byte repeated code - 128 times
                            x += code - 128
                            pos += 2
                        else:  # a literal: the next `code` bytes
                            x += code
                            pos += code + 1
                    if x != width:
                        raise ImageReadError(
                            f"{path}: corrupt RLE data in scanline {y} "
                            "(run crosses the end of the line)"
                        )
            except IndexError:
                raise ImageReadError(f"{path}: Radiance data truncated at scanline {y}") from None
            if pos > size:
                raise ImageReadError(f"{path}: Radiance data truncated at scanline {y}")
        else:
            pos = _flat_scanline(buf, pos, out[y], path, y)
    if rle_rows:
        data = np.frombuffer(buf, np.uint8)
        src = _rle_sources(data, np.asarray(headers, np.int64))
        if src is None:
            raise ImageReadError(f"{path}: corrupt RLE data (zero-length run)")
        planes = data[src].reshape(len(rle_rows), 4, width)
        out[rle_rows] = planes.transpose(0, 2, 1)
    return out


def _rle_sources(data: np.ndarray, headers: np.ndarray) -> np.ndarray | None:
    """For every decoded byte, the index of the file byte it copies (None if a run is empty).
    A cumulative sum of steps: 1 inside literals, 0 inside runs, a jump at each header."""
    codes = data[headers].astype(np.int64)
    literal = codes <= 128
    counts = np.where(literal, codes, codes - 128)
    if counts.size == 0 or counts.min() == 0:
        return None
    first = headers + 1  # source of the first byte of each run or literal
    last = first + (counts - 1) * literal
    steps = np.repeat(literal.astype(np.int64), counts)
    starts = np.cumsum(counts) - counts
    steps[starts] = first - np.concatenate(([0], last[:-1]))
    return np.cumsum(steps)


def _flat_scanline(buf: bytes, pos: int, row: np.ndarray, path: Path, y: int) -> int:
    width = row.shape[0]
    available = min(width, (len(buf) - pos) // 4)  # old-style RLE lines are shorter than 4W
    pixels = np.frombuffer(buf, np.uint8, 4 * available, pos).reshape(available, 4)
    if np.any(np.all(pixels[:, :3] == 1, axis=1)):
        return _old_rle_scanline(buf, pos, row, path, y)
    if available < width:
        raise ImageReadError(f"{path}: Radiance data truncated at scanline {y}")
    row[:] = pixels
    return pos + 4 * width


def _old_rle_scanline(buf: bytes, pos: int, row: np.ndarray, path: Path, y: int) -> int:
    """Old-style RLE: a pixel (1, 1, 1, n) repeats the previous pixel n << shift times."""
    width, x, shift = row.shape[0], 0, 0
    while x < width:
        if pos + 4 > len(buf):
            raise ImageReadError(f"{path}: Radiance data truncated at scanline {y}")
        r, g, b, e = buf[pos : pos + 4]
        pos += 4
        if r == 1 and g == 1 and b == 1:
            if x == 0:
                raise ImageReadError(f"{path}: corrupt old-style RLE in scanline {y}")
            n = e << shift
            if x + n > width:
                raise ImageReadError(f"{path}: corrupt old-style RLE in scanline {y}")
            row[x : x + n] = row[x - 1]
            x += n
            shift += 8
        else:
            row[x] = (r, g, b, e)
            x += 1
            shift = 0
    return pos


__all__ = ["RadianceHeader", "read_radiance", "rgbe_to_float"]
