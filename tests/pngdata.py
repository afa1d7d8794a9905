"""PNG files built byte by byte, so a decoder can be checked on what libraries do not write:
every row filter in one file, Adam7 interlacing, palettes with transparency."""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# (x start, y start, x step, y step) of the seven Adam7 passes
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2)]
ADAM7 += [(0, 1, 1, 2)]


def chunk(kind: bytes, body: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return struct.pack(">I", len(body)) + kind + body + crc


def filtered_rows(raw: np.ndarray, bpp: int, filters) -> bytes:
    """Rows of bytes (h, w * bpp) filtered with the given PNG filter types (0-4), one a row."""
    h = raw.shape[0]
    raw = raw.reshape(h, -1, bpp).astype(int)
    left, up, ul = np.zeros_like(raw), np.zeros_like(raw), np.zeros_like(raw)
    left[:, 1:], up[1:], ul[1:, 1:] = raw[:, :-1], raw[:-1], raw[:-1, :-1]
    p = left + up - ul
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - ul)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
    predictors = [0 * raw, left, up, (left + up) // 2, paeth]
    return b"".join(
        bytes([f]) + ((raw[y] - predictors[f][y]) % 256).astype(np.uint8).tobytes()
        for y, f in zip(range(h), filters)
    )


def png16(arr: np.ndarray, filters=(0, 1, 2, 3, 4), interlaced: bool = False) -> bytes:
    """A 16-bit PNG of `arr` ((H, W) or (H, W, 2-4)), its rows cycling through `filters`."""
    arr = arr if arr.ndim == 3 else arr[..., None]
    h, w, c = arr.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    data = b""
    for x0, y0, dx, dy in ADAM7 if interlaced else [(0, 0, 1, 1)]:
        sub = arr[y0::dy, x0::dx]
        if sub.size:
            raw = sub.astype(">u2").reshape(sub.shape[0], -1).view(np.uint8)
            cycle = list(filters) * (sub.shape[0] // len(filters) + 1)
            data += filtered_rows(raw, 2 * c, cycle)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, int(interlaced))
    return (
        SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b"")
    )


def palette_png(idx: np.ndarray, palette: np.ndarray, alpha: bytes | None = None) -> bytes:
    """An 8-bit palette PNG; `alpha` is the tRNS chunk (entries past it are opaque)."""
    h, w = idx.shape
    rows = b"".join(b"\x00" + idx[y].astype(np.uint8).tobytes() for y in range(h))
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
    body += chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    if alpha is not None:
        body += chunk(b"tRNS", alpha)
    return SIGNATURE + body + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
