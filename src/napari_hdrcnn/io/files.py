"""Which files are images, the errors that name a file and its problem, and the guard that turns
any failure of a write into an `ImageWriteError`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .atomic import atomic_output

HDR_EXTENSIONS = (".exr", ".hdr")
LDR_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".bmp",
    ".webp",
    ".gif",
    ".ppm",
    ".pgm",
    ".pnm",
)
IMAGE_EXTENSIONS = HDR_EXTENSIONS + LDR_EXTENSIONS

MAX_PIXELS = 1 << 28  # refuse headers that promise absurd sizes before allocating


class ImageReadError(ValueError):
    """An image that cannot be read; the message names the file and the problem."""


class ImageWriteError(OSError):
    """An image that could not be written; the message names the file and the problem."""


def is_hdr_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in HDR_EXTENSIONS


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(path: str | os.PathLike) -> list[Path]:
    """`[path]` for an image file, or the images of a folder (not recursive, no hidden files),
    sorted by name."""
    path = Path(path)
    if path.is_file():
        if not is_image_file(path):
            raise ImageReadError(
                f"{path}: not a supported image type ({', '.join(IMAGE_EXTENSIONS)})"
            )
        return [path]
    if path.is_dir():
        found = sorted(
            (
                p
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and is_image_file(p)
            ),
            key=lambda p: p.name,
        )
        if not found:
            raise ImageReadError(
                f"{path}: no images found in this folder (looked for {', '.join(IMAGE_EXTENSIONS)})"
            )
        return found
    raise ImageReadError(f"{path}: no such file or folder")


def check_readable(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if not path.is_file():
        raise ImageReadError(f"{path}: not a file")


def write_image_atomically(
    path: str | os.PathLike, what: str, write: Callable[[Path], object]
) -> None:
    """`write(tmp)` inside atomic_output; any failure becomes an ImageWriteError naming
    `path` (the OpenEXR binding raises RuntimeError, file systems OSError)."""
    try:
        with atomic_output(path) as tmp:
            write(tmp)
    except ImageWriteError:
        raise
    except (OSError, RuntimeError) as err:
        raise ImageWriteError(f"{path}: cannot write {what} ({err})") from err
