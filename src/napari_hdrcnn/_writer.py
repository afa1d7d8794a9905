"""napari writer: an image layer to OpenEXR, values as they are, through `io.write_exr`.

- Pixel type: half by default; float32 when the layer is float and its metadata asks with
  `metadata["exr_pixel_type"] = "float32"` (the reader sets that for files whose values half
  cannot hold, so open -> save -> open gives the same array).
- Values are written unchanged: no scaling, an 8-bit layer's 255 is written as 255.0.
- Metadata: the header the reader kept (`metadata["exr_header"]`) and the layer's other plain
  metadata (strings, numbers, one level of nested dicts as `key.subkey`) become attributes.
- A time series, (T, Y, X, 3) RGB or (T, Y, X) grey, is written as one file per frame:
  `<stem>_0000.exr`, `<stem>_0001.exr`, ... Each file is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .io import write_exr

PIXEL_TYPE_KEY = "exr_pixel_type"


def header_from_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """EXR attributes from layer metadata: the reader's header, then plain entries."""
    header = dict(metadata.get("exr_header") or {})
    for key, value in metadata.items():
        if key.startswith("exr_") or key in ("path", "paths"):
            continue  # the reader's own bookkeeping, not the image's
        if isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, (str, int, float, bool)):
                    header[f"{key}.{sub}"] = v
        elif isinstance(value, (str, int, float, bool)):
            header[key] = value
    return header


def pixel_type(data: np.ndarray, metadata: dict[str, Any]) -> str:
    if metadata.get(PIXEL_TYPE_KEY) == "float32" and data.dtype.kind == "f":
        return "float32"
    return "half"


def frame_paths(path: Path, n: int) -> list[Path]:
    return [path.with_name(f"{path.stem}_{i:04d}{path.suffix}") for i in range(n)]


def write_exr_layer(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 single-layer writer. Returns the written paths (one per frame for a series)."""
    if isinstance(data, (list, tuple)):  # multiscale: the full-resolution level
        data = data[0]
    arr = np.asarray(data)
    if arr.dtype.kind not in "uif":
        raise ValueError(f"{path}: cannot write {arr.dtype} pixels to OpenEXR")
    rgb = bool(meta.get("rgb", False))
    metadata = dict(meta.get("metadata") or {})
    header = header_from_metadata(metadata)
    dtype = pixel_type(arr, metadata)
    target = Path(path)
    if target.suffix.lower() != ".exr":
        target = target.with_suffix(".exr")
    spatial = 3 if rgb else 2
    if arr.ndim == spatial:
        write_exr(target, arr, dtype=dtype, header=header)
        return [str(target)]
    if arr.ndim == spatial + 1:
        paths = frame_paths(target, arr.shape[0])
        for i, p in enumerate(paths):
            write_exr(p, arr[i], dtype=dtype, header={**header, "frame": i})
        return [str(p) for p in paths]
    raise ValueError(
        f"{path}: OpenEXR holds one image; this layer has shape {arr.shape} ({arr.ndim - spatial}"
        f" axes besides the image's). Save one image or a time series (T, Y, X"
        f"{', C' if rgb else ''}), which is written one file per frame"
    )
