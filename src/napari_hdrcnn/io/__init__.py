"""Reading and writing images: LDR (`ldr`), OpenEXR (`exr`), Radiance RGBE (`radiance`), and
the atomic write every output of the project goes through (`atomic`).

Images are untrusted input: every failure to read one becomes an `ImageReadError` whose message
names the file and the problem. Outputs are written atomically (temp file in the destination
folder, then `os.replace`), so a file appears whole or not at all.

- LDR files come back as stored: uint8 or uint16, (H, W) or (H, W, C) (see `ldr`).
- HDR files come back as float32 linear RGB (H, W, 3), or (H, W) for a grey EXR.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_output, atomic_write, new_file_mode
from .exr import HALF_MAX, LOSSLESS_COMPRESSIONS, ExrImage, compression_names, read_exr, write_exr
from .files import (
    HDR_EXTENSIONS,
    IMAGE_EXTENSIONS,
    LDR_EXTENSIONS,
    ImageReadError,
    ImageWriteError,
    check_readable,
    is_hdr_file,
    is_image_file,
    list_images,
)
from .ldr import jpeg_round_trip, read_ldr, write_png
from .radiance import read_radiance, rgbe_to_float


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Pixels of any supported image: LDR as stored (uint8/uint16), HDR as float32 linear."""
    path = Path(path)
    check_readable(path)
    ext = path.suffix.lower()
    if ext == ".exr":
        return read_exr(path).pixels
    if ext == ".hdr":
        return read_radiance(path)
    return read_ldr(path)


__all__ = [
    "HALF_MAX",
    "HDR_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "LDR_EXTENSIONS",
    "LOSSLESS_COMPRESSIONS",
    "ExrImage",
    "ImageReadError",
    "ImageWriteError",
    "atomic_output",
    "atomic_write",
    "compression_names",
    "is_hdr_file",
    "is_image_file",
    "jpeg_round_trip",
    "list_images",
    "new_file_mode",
    "read_exr",
    "read_image",
    "read_ldr",
    "read_radiance",
    "rgbe_to_float",
    "write_exr",
    "write_png",
]
