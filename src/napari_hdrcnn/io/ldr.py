"""LDR images (PNG, JPEG, TIFF, BMP, WebP, GIF, PNM) in, PNG out.

Files come back as stored: uint8 or uint16, (H, W) or (H, W, C); palette images become RGB(A);
JPEG EXIF orientation is applied. Pillow reads them, except TIFF (tifffile) and 16-bit colour
PNG (grey+alpha, RGB, RGBA, interlaced or not), which Pillow would cut to 8 bit and which
imagecodecs' libpng binding reads instead. `write_png` writes 8-bit through Pillow and 16-bit
through libpng (Pillow cannot write 16-bit colour).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import numpy as np

from .files import MAX_PIXELS, ImageReadError, check_readable, write_image_atomically

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SUBSAMPLING = "4:2:0"  # Pillow's default for JPEG, fixed explicitly so it is recorded


def read_ldr(path: str | os.PathLike) -> np.ndarray:
    """Pixels of an LDR file as stored (uint8/uint16)."""
    path = Path(path)
    check_readable(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        return _read_tiff(path)
    if _is_png16_colour(path):
        return _read_png16(path)
    return _read_with_pillow(path)


def _read_with_pillow(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)  # a copy, rotated as the camera meant
            return _pillow_to_array(im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"{path}: cannot read image ({err})") from err


def _pillow_to_array(im) -> np.ndarray:
    mode = im.mode
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    elif mode == "La":
        im = im.convert("LA")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    arr = np.array(im)
    if mode.startswith("I;16"):
        return arr.astype(np.uint16)
    if mode == "I" and arr.size and arr.min() >= 0 and arr.max() <= 0xFFFF:
        return arr.astype(np.uint16)  # older Pillow opens 16-bit grey PNG as 32-bit "I"
    return arr


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.pages:
                raise ImageReadError(f"{path}: TIFF file without images")
            page = tif.pages.first if hasattr(tif.pages, "first") else tif.pages[0]
            arr = page.asarray()
            axes = page.axes
            palette = page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None
            colormap = page.colormap if palette else None
    except ImageReadError:
        raise
    except Exception as err:  # tifffile raises many types for broken files
        raise ImageReadError(f"{path}: cannot read TIFF ({err})") from err
    if axes.startswith("S") and arr.ndim == 3:  # planar configuration: samples first
        arr = np.moveaxis(arr, 0, -1)
    if colormap is not None:
        arr = _apply_tiff_colormap(arr, colormap)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    return np.ascontiguousarray(arr)


def _apply_tiff_colormap(indices: np.ndarray, colormap: np.ndarray) -> np.ndarray:
    rgb = np.moveaxis(colormap, 0, -1)[indices]  # TIFF colormaps are 16 bit
    if rgb.max(initial=0) <= 255:
        return rgb.astype(np.uint8)
    if np.all(rgb % 257 == 0):
        return (rgb // 257).astype(np.uint8)
    return rgb.astype(np.uint16)


def _is_png16_colour(path: Path) -> bool:
    """True for 16-bit grey+alpha/RGB/RGBA PNGs, which Pillow reduces to 8 bit."""
    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return False
    bit_depth, colour_type = head[24], head[25]
    return bit_depth == 16 and colour_type in (2, 4, 6)


def _read_png16(path: Path) -> np.ndarray:
    import imagecodecs

    data = path.read_bytes()
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if width * height > MAX_PIXELS or not width or not height:
        raise ImageReadError(f"{path}: PNG size {width}x{height} out of range")
    try:
        return imagecodecs.png_decode(data)
    except Exception as err:  # imagecodecs.PngError, or MemoryError for lying headers
        raise ImageReadError(f"{path}: cannot read PNG, truncated or corrupt ({err})") from err


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write uint8 or uint16 grey (H, W) / (H, W, 1), grey+alpha, RGB or RGBA as PNG,
    atomically."""
    arr = np.asarray(array)
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: write_png needs uint8 or uint16 pixels, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (2, 3, 4))):
        raise ValueError(
            f"{path}: write_png needs (H, W) or (H, W, 1-4) pixels, got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{path}: cannot write an empty image of shape {arr.shape}")

    def write(tmp: Path) -> None:
        if arr.dtype == np.uint16:
            tmp.write_bytes(encode_png16(arr))
        else:
            from PIL import Image

            Image.fromarray(np.ascontiguousarray(arr)).save(tmp, format="PNG")

    write_image_atomically(path, "PNG", write)


def encode_png16(arr: np.ndarray) -> bytes:
    """16-bit PNG bytes, no row filter and zlib level 6: as fast as the filtered encodings
    are small (benchmarks/bench_png.py), and no slower than the codec this replaced."""
    import imagecodecs

    encoded = imagecodecs.png_encode(
        np.ascontiguousarray(arr), level=6, filter=imagecodecs.PNG.FILTER.NONE
    )
    return cast(bytes, encoded)  # bytes when no output buffer is given


def jpeg_round_trip(pixels: np.ndarray, quality: int) -> tuple[np.ndarray, bytes]:
    """Encode 8-bit RGB with Pillow's libjpeg at `quality` (4:2:0 chroma) and decode it again:
    (decoded pixels, file bytes). The evaluation's test inputs and the training camera's
    compressed samples both go through this one."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=int(quality), subsampling=2)
    data = buf.getvalue()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), data


__all__ = [
    "JPEG_SUBSAMPLING",
    "PNG_SIGNATURE",
    "encode_png16",
    "jpeg_round_trip",
    "read_ldr",
    "write_png",
]
