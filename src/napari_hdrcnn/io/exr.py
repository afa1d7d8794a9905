"""OpenEXR in and out through the official OpenEXR 3.x bindings, with the header's attributes
marshalled to plain Python values and back.

Files are read with `separate_channels=True` always (the coalescing mode fails on mixed pixel
types). Pixels come back as float32 linear RGB (H, W, 3), or (H, W) for a grey file.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..colour import REC709_LUMINANCE
from .files import ImageReadError, check_readable, write_image_atomically

HALF_MAX = 65504.0


def _openexr():
    import OpenEXR

    return OpenEXR


@dataclass
class ExrImage:
    """One part of an OpenEXR file, as float32 pixels over its data window."""

    pixels: np.ndarray  # (H, W, 3) RGB or (H, W) grey, float32, NaN/Inf kept
    channels: list[str]  # the file's channel names behind `pixels`, e.g. ["R", "G", "B"]
    header: dict  # the file's header attributes as plain Python values
    data_window: tuple[tuple[int, int], tuple[int, int]]  # ((xmin, ymin), (xmax, ymax))
    display_window: tuple[tuple[int, int], tuple[int, int]]
    nonfinite: int  # NaN/Inf values in pixels and alpha
    alpha: np.ndarray | None = None  # (H, W) float32 when the file has an A channel
    path: str = ""
    all_channels: list[str] = field(default_factory=list)

    @property
    def origin(self) -> tuple[int, int]:
        """(x, y) of the data window's top-left pixel relative to the display window's; place
        `pixels` there (napari: translate=(y, x)) to line up with the display window."""
        (dx, dy), (wx, wy) = self.data_window[0], self.display_window[0]
        return dx - wx, dy - wy

    @property
    def is_grey(self) -> bool:
        return self.pixels.ndim == 2


def read_exr(path: str | os.PathLike, part: int | str = 0, layer: str | None = None) -> ExrImage:
    """Read one part of an OpenEXR file.

    Channels: unprefixed R, G, B (the default view) -> RGB; Y with half-size RY/BY
    (luminance/chroma) -> RGB through the file's chromaticities; Y alone -> grey; a single
    channel of any name -> grey; A -> `alpha`. With no unprefixed image channels, the first
    layer (by name) that has them is used; `layer="left"` picks `left.R`, `left.G`, ...
    Tiled and mip-mapped files give their full-resolution level. `part` is the index or the
    name of a part of a multi-part file.
    """
    path = Path(path)
    check_readable(path)
    exr = _openexr()
    if not exr.isOpenExrFile(str(path)):
        raise ImageReadError(f"{path}: not an OpenEXR file (no OpenEXR magic number)")
    try:
        f = exr.File(str(path), separate_channels=True)
        parts = f.parts
        if not parts:
            raise ImageReadError(f"{path}: truncated or corrupt OpenEXR file (no readable part)")
        if isinstance(part, str):
            names = [p.header.get("name") for p in parts]
            if part not in names:
                raise ImageReadError(f"{path}: no part named {part!r}; parts are {names}")
            part = names.index(part)
        if not 0 <= part < len(parts):
            raise ImageReadError(f"{path}: part {part} requested, the file has {len(parts)}")
        header = parts[part].header
        channels = parts[part].channels
    except ImageReadError:
        raise
    except Exception as err:  # the binding raises RuntimeError/ValueError for broken files
        raise ImageReadError(f"{path}: cannot read OpenEXR file ({err})") from err

    storage = str(header.get("type", ""))
    if "deep" in storage:
        raise ImageReadError(f"{path}: deep OpenEXR data is not supported")
    data_window = _box(header.get("dataWindow"))
    display_window = _box(header.get("displayWindow")) if "displayWindow" in header else data_window
    (xmin, ymin), (xmax, ymax) = data_window
    width, height = xmax - xmin + 1, ymax - ymin + 1

    def plane(name: str) -> np.ndarray:
        ch = channels[name]
        px = ch.pixels
        if px is None or px.ndim != 2:
            raise ImageReadError(f"{path}: channel {name!r} has no readable pixels")
        px = px.astype(np.float32)
        if px.shape != (height, width):
            if ch.xSampling == 1 and ch.ySampling == 1:
                raise ImageReadError(
                    f"{path}: channel {name!r} is {px.shape[1]}x{px.shape[0]}"
                    f", the data window {width}x{height}"
                )
            px = _upsample(px, ch.xSampling, ch.ySampling, xmin, ymin, width, height)
        return px

    selection = _select_channels(list(channels), layer)
    if selection is None:
        where = f" in layer {layer!r}" if layer else ""
        raise ImageReadError(
            f"{path}: no image channels{where} (R, G, B, Y or a single "
            f"channel); channels are {sorted(channels)}"
        )
    kind, names, alpha_name = selection
    if kind == "rgb":
        pixels = np.stack(
            [plane(n) if n else np.zeros((height, width), np.float32) for n in names], axis=-1
        )
    elif kind == "yc":
        pixels = _yc_to_rgb(
            plane(names[0]),
            plane(names[1]),
            plane(names[2]),
            _luminance_weights(header.get("chromaticities")),
        )
    else:  # grey
        pixels = plane(names[0])
    alpha = plane(alpha_name) if alpha_name else None
    used = [n for n in names if n] + ([alpha_name] if alpha_name else [])
    nonfinite = int(np.count_nonzero(~np.isfinite(pixels)))
    if alpha is not None:
        nonfinite += int(np.count_nonzero(~np.isfinite(alpha)))
    return ExrImage(
        pixels=pixels,
        channels=used,
        header=_plain_header(header),
        data_window=data_window,
        display_window=display_window,
        nonfinite=nonfinite,
        alpha=alpha,
        path=str(path),
        all_channels=sorted(channels),
    )


def _select_channels(names: list[str], layer: str | None):
    """(kind, names, alpha name or None): ("rgb", [R, G, B]), ("yc", [Y, RY, BY]) or
    ("grey", [name]); "" stands for an RGB channel the file lacks. None when nothing fits."""
    if layer is None:
        found = _select_in_layer(names, "")
        if found is None and not any("." not in n for n in names):
            # no default view: the first layer (by name) with colour, else with anything
            layers = [
                _select_in_layer(names, prefix + ".")
                for prefix in sorted({n.rsplit(".", 1)[0] for n in names})
            ]
            layers = [f for f in layers if f is not None]
            found = next((f for f in layers if f[0] != "grey"), layers[0] if layers else None)
        return found
    return _select_in_layer(names, layer.rstrip(".") + ".")


def _select_in_layer(names: list[str], prefix: str):
    own = {
        n[len(prefix) :]: n for n in names if n.startswith(prefix) and "." not in n[len(prefix) :]
    }
    by_upper = {k.upper(): v for k, v in own.items()}
    alpha = by_upper.get("A")
    rgb = [by_upper.get(c, "") for c in "RGB"]
    if all(rgb):
        return "rgb", rgb, alpha
    if "Y" in by_upper:
        if "RY" in by_upper and "BY" in by_upper:
            return "yc", [by_upper["Y"], by_upper["RY"], by_upper["BY"]], alpha
        return "grey", [by_upper["Y"]], alpha
    present = [n for n in rgb if n]
    if len(present) == 2:  # the missing one reads as zeros
        return "rgb", rgb, alpha
    if len(present) == 1:
        return "grey", present, alpha
    if len(own) == 1:
        return "grey", list(own.values()), None
    return None


def _upsample(
    px: np.ndarray, xs: int, ys: int, xmin: int, ymin: int, width: int, height: int
) -> np.ndarray:
    """Bring a subsampled channel to full size by linear interpolation between its samples,
    which sit at the pixels whose coordinates are multiples of the sampling rates."""
    px = _interp_axis(px, 0, ys, ymin, height)
    return _interp_axis(px, 1, xs, xmin, width)


def _interp_axis(a: np.ndarray, axis: int, sampling: int, start: int, n: int) -> np.ndarray:
    m = a.shape[axis]
    if m == n and sampling == 1:
        return a
    first = -(-start // sampling) * sampling  # first coordinate that carries a sample
    pos = np.clip((start + np.arange(n) - first) / sampling, 0, max(m - 1, 0))
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, m - 1)
    w = (pos - i0).astype(np.float32)
    shape = [1, 1]
    shape[axis] = n
    w = w.reshape(shape)
    lo, hi = np.take(a, i0, axis=axis), np.take(a, i1, axis=axis)
    # where w == 0 keep lo exactly, so a NaN/Inf neighbour does not leak into exact samples
    return np.where(w == 0, lo, lo * (1 - w) + hi * w).astype(np.float32)


def _luminance_weights(chromaticities) -> tuple[float, float, float]:
    """The Y row of the RGB -> XYZ matrix of the file's primaries (Rec. 709 without them)."""
    if chromaticities is None:
        return REC709_LUMINANCE
    try:
        rx, ry, gx, gy, bx, by, wx, wy = (float(v) for v in chromaticities)
        primaries = np.array(
            [
                [rx / ry, gx / gy, bx / by],
                [1.0, 1.0, 1.0],
                [(1 - rx - ry) / ry, (1 - gx - gy) / gy, (1 - bx - by) / by],
            ]
        )
        white = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
        weights = np.linalg.solve(primaries, white)
    except (TypeError, ValueError, ZeroDivisionError, np.linalg.LinAlgError):
        return REC709_LUMINANCE
    if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
        return REC709_LUMINANCE
    r, g, b = (float(w) for w in weights)
    return (r, g, b)


def _yc_to_rgb(
    y: np.ndarray, ry: np.ndarray, by: np.ndarray, weights: tuple[float, float, float]
) -> np.ndarray:
    """OpenEXR's luminance/chroma: RY = (R - Y) / Y, BY = (B - Y) / Y."""
    wr, wg, wb = weights
    r = (ry + 1) * y
    b = (by + 1) * y
    g = (y - wr * r - wb * b) / wg
    return np.stack([r, g, b], axis=-1).astype(np.float32)


def _box(value) -> tuple[tuple[int, int], tuple[int, int]]:
    (x0, y0), (x1, y1) = value
    return (int(x0), int(y0)), (int(x1), int(y1))


def _plain(value):
    """A header attribute as JSON-able Python (lists, numbers, strings, dicts)."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "xSampling") and hasattr(value, "name"):  # a Channel description
        return {
            "name": value.name,
            "xSampling": int(value.xSampling),
            "ySampling": int(value.ySampling),
            "pLinear": bool(value.pLinear),
        }
    if hasattr(value, "xSize") and hasattr(value, "mode"):  # TileDescription
        return {
            "xSize": int(value.xSize),
            "ySize": int(value.ySize),
            "mode": getattr(value.mode, "name", str(value.mode)),
            "roundingMode": getattr(value.roundingMode, "name", str(value.roundingMode)),
        }
    name = getattr(value, "name", None)
    if isinstance(name, str):  # the binding's enums
        return name
    return str(value)


def _plain_header(header: dict) -> dict:
    plain: dict[str, object] = {}
    for key, value in header.items():
        if key == "compression":
            plain[key] = _compression_name(value)
        elif key == "preview":
            px = getattr(value, "pixels", None)
            plain[key] = (
                {"width": int(px.shape[1]), "height": int(px.shape[0])}
                if isinstance(px, np.ndarray) and px.ndim >= 2
                else str(value)
            )
        else:
            plain[key] = _plain(value)
    return plain


# compression names accepted by write_exr -> attribute names in the OpenEXR module
_COMPRESSION_ATTRS = {
    "none": "NO_COMPRESSION",
    "rle": "RLE_COMPRESSION",
    "zips": "ZIPS_COMPRESSION",
    "zip": "ZIP_COMPRESSION",
    "piz": "PIZ_COMPRESSION",
    "pxr24": "PXR24_COMPRESSION",
    "b44": "B44_COMPRESSION",
    "b44a": "B44A_COMPRESSION",
    "dwaa": "DWAA_COMPRESSION",
    "dwab": "DWAB_COMPRESSION",
    "htj2k256": "HTJ2K256_COMPRESSION",
    "htj2k32": "HTJ2K32_COMPRESSION",
    "zstd": "ZSTD_COMPRESSION",
}
LOSSLESS_COMPRESSIONS = ("none", "rle", "zips", "zip", "piz")  # pxr24 is lossy for float32


def compression_names() -> list[str]:
    """The compression names write_exr accepts with this OpenEXR binding."""
    exr = _openexr()
    return [k for k, attr in _COMPRESSION_ATTRS.items() if hasattr(exr, attr)]


def _compression_name(value) -> str:
    name = getattr(value, "name", str(value))
    for short, attr in _COMPRESSION_ATTRS.items():
        if attr == name:
            return short
    return name


def _compression_constant(compression):
    exr = _openexr()
    if isinstance(compression, exr.Compression):
        return compression
    key = str(compression).strip().lower().removesuffix("_compression")
    key = "none" if key == "no" else key
    if key not in _COMPRESSION_ATTRS or not hasattr(exr, _COMPRESSION_ATTRS[key]):
        raise ValueError(
            f"unknown OpenEXR compression {compression!r}; one of {', '.join(compression_names())}"
        )
    return getattr(exr, _COMPRESSION_ATTRS[key])


# header keys that describe the pixels being written: they come from the array, not the caller
_STRUCTURAL_KEYS = {
    "channels",
    "compression",
    "dataWindow",
    "displayWindow",
    "lineOrder",
    "type",
    "tiles",
    "chunkCount",
    "version",
    "name",
    "preview",
    "multiView",
    "view",
}


class _Unwritable(Exception):
    pass


# standard attributes whose type (rational, time code, key code) a plain value cannot rebuild
_TYPED_ATTRIBUTES = {"framesPerSecond", "timeCode", "keyCode", "idManifest", "deepImageState"}


def _exr_attribute(key: str, value):
    """The value in a form the binding writes faithfully, or _Unwritable. (The binding itself
    silently drops lists of numbers and wraps integers beyond 32 bits, hence this check.)"""
    if type(value).__name__ in ("TimeCode", "KeyCode") and type(value).__module__ == "OpenEXR":
        return value  # the binding's own objects, written as they are
    if key in _TYPED_ATTRIBUTES:
        raise _Unwritable("its OpenEXR type cannot be rebuilt from a plain value")
    if key == "envmap":
        name = str(getattr(value, "name", value)).upper()
        envmap = getattr(_openexr(), name if name.startswith("ENVMAP_") else f"ENVMAP_{name}", None)
        if envmap is None:
            raise _Unwritable(f"unknown environment map kind {value!r}")
        return envmap
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        if -(1 << 31) <= int(value) < (1 << 31):
            return int(value)
        raise _Unwritable("integer outside 32 bits")
    if isinstance(value, (float, np.floating)):
        return float(value)  # stored as a 32-bit float
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) and all(isinstance(v, str) for v in value):
            return [str(v) for v in value]
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as err:
            raise _Unwritable(str(err)) from None
        if arr.dtype.kind not in "iuf" or arr.size == 0:
            raise _Unwritable(f"array of {arr.dtype}")
        if key == "chromaticities" and arr.size == 8:
            return tuple(float(v) for v in arr.ravel())
        if arr.shape in ((2,), (3,)):
            cast = int if arr.dtype.kind in "iu" else float
            return tuple(cast(v) for v in arr)
        if arr.shape == (2, 2) and arr.dtype.kind in "iu":
            return tuple(tuple(int(v) for v in row) for row in arr)
        if arr.shape in ((3, 3), (4, 4)):
            return arr.astype(np.float32)  # M33f/M44f, the types of the standard matrices
        raise _Unwritable(f"array of shape {arr.shape}")
    raise _Unwritable(f"type {type(value).__name__}")


def _writable_header(header: dict | None, path) -> dict:
    out = {}
    for key, value in (header or {}).items():
        if key in _STRUCTURAL_KEYS:
            continue
        try:
            out[str(key)] = _exr_attribute(str(key), value)
        except _Unwritable as why:
            warnings.warn(
                f"{path}: header entry {key!r} not written to OpenEXR ({why})", stacklevel=3
            )
    return out


_EXR_DTYPES = {
    "half": np.float16,
    "float16": np.float16,
    "float": np.float32,
    "float32": np.float32,
}


def write_exr(
    path: str | os.PathLike,
    pixels: np.ndarray,
    *,
    dtype: str = "half",
    compression: str = "zip",
    header: dict | None = None,
) -> None:
    """Write (H, W) / (H, W, 1) as Y, (H, W, 3) as RGB, (H, W, 4) as RGBA; atomically.

    `dtype` "half" (default) or "float32". Finite values beyond the half range are clipped to
    +-65504 with a warning (NaN/Inf in the input are written as they are). `header` entries
    are added as attributes where the binding can store them (strings, numbers, lists of
    strings, 2/3-vectors, 3x3/4x4 matrices, chromaticities); others are skipped with a
    warning, and keys that describe the pixels (channels, dataWindow, ...) are ignored.
    """
    exr = _openexr()
    arr = np.asarray(pixels)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{path}: cannot write {arr.dtype} pixels to OpenEXR")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    names = {2: ["Y"]}.get(arr.ndim) or {3: ["R", "G", "B"], 4: ["R", "G", "B", "A"]}.get(
        arr.shape[2] if arr.ndim == 3 else 0
    )
    if names is None:
        raise ValueError(
            f"{path}: write_exr needs (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) "
            f"pixels, got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{path}: cannot write an empty image of shape {arr.shape}")
    key = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    if key not in _EXR_DTYPES:
        raise ValueError(f"{path}: dtype must be 'half' or 'float32', got {dtype!r}")
    target = _EXR_DTYPES[key]
    data = arr.astype(np.float32)  # a copy: the caller's array is never touched
    if target is np.float16:
        big = np.isfinite(data) & (np.abs(data) > HALF_MAX)
        if big.any():
            warnings.warn(
                f"{path}: {int(big.sum())} values beyond the half-float range "
                f"clipped to +-{HALF_MAX:g}; write dtype='float32' to keep them",
                stacklevel=2,
            )
            data[big] = np.copysign(HALF_MAX, data[big])
    data = data.astype(target)
    attrs = {"compression": _compression_constant(compression), "type": exr.scanlineimage}
    attrs.update(_writable_header(header, path))
    planes = [data] if data.ndim == 2 else [data[..., i] for i in range(data.shape[2])]
    channels = {n: np.ascontiguousarray(p) for n, p in zip(names, planes)}
    write_image_atomically(
        path, "OpenEXR file", lambda tmp: exr.File(attrs, channels).write(str(tmp))
    )


__all__ = [
    "ExrImage",
    "HALF_MAX",
    "LOSSLESS_COMPRESSIONS",
    "compression_names",
    "read_exr",
    "write_exr",
]
