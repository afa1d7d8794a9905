"""napari reader for OpenEXR (.exr) and Radiance (.hdr) images.

Thin on purpose: pixels come from `io` (which handles luminance-only, luminance/chroma,
multi-layer and offset-window files and keeps NaN/Inf), display settings from
`tonemap.display_range`, so the image is visible at once rather than a black frame with one
white sun. The getter only looks at the file name and never raises; the reader raises
`ImageReadError` naming the file and the problem.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .io import HDR_EXTENSIONS, ImageReadError, read_exr, read_radiance
from .tonemap import display_range

LayerData = tuple[np.ndarray, dict[str, Any], str]


def _hdr_paths(path) -> list[str] | None:
    """The path(s) as strings if every one names an .exr or .hdr file, else None."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else path
    if not isinstance(paths, (list, tuple)) or not paths:
        return None
    out = []
    for p in paths:
        if not isinstance(p, (str, os.PathLike)) or Path(p).suffix.lower() not in HDR_EXTENSIONS:
            return None
        out.append(os.fspath(p))
    return out


def get_reader(path) -> Callable[[Any], list[LayerData]] | None:
    """npe2 reader getter: `read_hdr` for .exr/.hdr paths (or a list of them), else None."""
    try:
        if not _hdr_paths(path):
            return None
        from ._commands import register_layer_context_menu

        register_layer_context_menu()  # napari imports the plugin only when it is used
        return read_hdr
    except Exception:  # a getter must never raise: napari would report the plugin as broken
        return None


def half_is_exact(pixels: np.ndarray) -> bool:
    """True when every value survives a round trip through 16-bit half floats."""
    with np.errstate(over="ignore"):  # values beyond half's range become inf: not exact
        return bool(
            np.array_equal(pixels.astype(np.float16).astype(np.float32), pixels, equal_nan=True)
        )


def read_file(path: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Pixels (float32 (H, W, 3) or (H, W)) and layer keyword arguments for one file."""
    if Path(path).suffix.lower() == ".hdr":
        pixels = read_radiance(path)
        return pixels, {"metadata": {"path": path, "format": "Radiance RGBE"}}
    exr = read_exr(path)
    metadata = {
        "path": path,
        "format": "OpenEXR",
        "exr_header": exr.header,
        "exr_channels": exr.channels,
        "exr_all_channels": exr.all_channels,
        "exr_nonfinite": exr.nonfinite,
        # what the writer needs to write these values back unchanged
        "exr_pixel_type": "half" if half_is_exact(exr.pixels) else "float32",
    }
    if exr.alpha is not None:
        metadata["exr_alpha_dropped"] = True  # as the core: colour only, alpha not shown
    ox, oy = exr.origin
    return exr.pixels, {"metadata": metadata, "translate": (oy, ox)}


def layer_kwargs(pixels: np.ndarray, name: str) -> dict[str, Any]:
    """Name, rgb flag and a display range that shows the HDR image at once."""
    (lo, hi), gamma = display_range(pixels)
    kwargs = {
        "name": name,
        "rgb": pixels.shape[-1] == 3 and pixels.ndim >= 3,
        "contrast_limits": (lo, hi),
        "gamma": gamma,
    }
    if not kwargs["rgb"]:
        kwargs["colormap"] = "gray"
    return kwargs


def read_hdr(path) -> list[LayerData]:
    """Read .exr/.hdr file(s). Several paths (napari's "stack") become one (T, ...) layer."""
    paths = _hdr_paths(path)
    if not paths:
        raise ImageReadError(f"{path}: not an OpenEXR (.exr) or Radiance (.hdr) file")
    frames = [read_file(p) for p in paths]
    if len(frames) == 1:
        pixels, kwargs = frames[0]
        kwargs.update(layer_kwargs(pixels, Path(paths[0]).stem))
        return [(pixels, kwargs, "image")]
    shapes = {f[0].shape for f in frames}
    if len(shapes) != 1:
        listing = ", ".join(f"{Path(p).name} {f[0].shape}" for p, f in zip(paths, frames))
        raise ImageReadError(f"cannot stack images of different shapes: {listing}")
    stack = np.stack([f[0] for f in frames])
    kwargs = layer_kwargs(stack, Path(paths[0]).stem)
    first = frames[0][1]
    kwargs["metadata"] = {**first["metadata"], "paths": paths}
    if any(f[1]["metadata"].get("exr_pixel_type") == "float32" for f in frames):
        kwargs["metadata"]["exr_pixel_type"] = "float32"
    if "translate" in first:
        kwargs["translate"] = (0, *first["translate"])
    return [(stack, kwargs, "image")]
