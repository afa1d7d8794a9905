"""Reading and writing images: LDR (PNG, JPEG, TIFF, ...), OpenEXR and Radiance RGBE.

Images are untrusted input: every failure to read one becomes an `ImageReadError` whose message
names the file and the problem. Outputs are written atomically through `atomic_output` (temp
file in the destination folder, then `os.replace`), so a file appears whole or not at all.

Conventions:
- LDR files come back as stored: uint8 or uint16, (H, W) or (H, W, C); palette images become
  RGB(A); JPEG EXIF orientation is applied. Pillow reads them, except TIFF (tifffile) and
  16-bit colour PNG, which Pillow would cut to 8 bit and which is decoded here.
- HDR files come back as float32 linear RGB (H, W, 3), or (H, W) for a grey EXR.
- OpenEXR goes through the official OpenEXR 3.x bindings, always with `separate_channels=True`
  (the coalescing mode fails on mixed pixel types).
- Radiance RGBE is decoded here in numpy; a mantissa m with exponent e gives m * 2**(e - 136)
  (the convention of OpenCV and stb_image; Radiance's own tools add 0.5 to m).
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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

HALF_MAX = 65504.0
REC709_LUMINANCE = (0.2126, 0.7152, 0.0722)
MAX_PIXELS = 1 << 28  # refuse Radiance headers that promise absurd sizes before allocating


class ImageReadError(ValueError):
    """An image that cannot be read; the message names the file and the problem."""


class ImageWriteError(OSError):
    """An image that could not be written; the message names the file and the problem."""


# -- file names ---------------------------------------------------------------------------------
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


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if not path.is_file():
        raise ImageReadError(f"{path}: not a file")


# -- atomic output ------------------------------------------------------------------------------
def _new_file_mode() -> int:
    """The mode an ordinary new file gets (mkstemp would leave 0600). Read from /proc rather
    than os.umask(), which would briefly change the umask of every thread."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path in `path`'s folder; rename it over `path` if the block succeeds,
    delete it if the block raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        try:
            os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else _new_file_mode())
        except OSError:  # some file systems have no modes; the content matters more
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise


# -- any image ----------------------------------------------------------------------------------
def read_image(path: str | os.PathLike) -> np.ndarray:
    """Pixels of any supported image: LDR as stored (uint8/uint16), HDR as float32 linear."""
    path = Path(path)
    _check_readable(path)
    ext = path.suffix.lower()
    if ext == ".exr":
        return read_exr(path).pixels
    if ext == ".hdr":
        return read_radiance(path)
    if ext in (".tif", ".tiff"):
        return _read_tiff(path)
    return _read_with_pillow(path)


def _read_with_pillow(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    png16 = _png16_colour_kind(path)
    if png16 == "plain":
        return _read_png16(path)
    if png16 == "interlaced":
        warnings.warn(
            f"{path}: interlaced 16-bit colour PNG read as 8 bit (re-save it without "
            "interlacing to keep 16 bits)",
            stacklevel=3,
        )
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


# -- PNG ----------------------------------------------------------------------------------------
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
_PNG_CHANNELS = {v: k for k, v in _PNG_COLOUR_TYPES.items()}


def _png16_colour_kind(path: Path) -> str | None:
    """ "plain" or "interlaced" for 16-bit RGB(A) and grey+alpha PNGs, which Pillow reduces to
    8 bit (the plain ones are decoded here instead); None for anything else."""
    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    bit_depth, colour_type, interlace = head[24], head[25], head[28]
    if bit_depth != 16 or colour_type not in (2, 4, 6):
        return None
    return "interlaced" if interlace else "plain"


def _png_chunks(data: bytes, path: Path) -> Iterator[tuple[bytes, bytes]]:
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length:
            raise ImageReadError(f"{path}: PNG truncated inside chunk {kind!r}")
        yield kind, body
        pos += 12 + length
        if kind == b"IEND":
            return
    raise ImageReadError(f"{path}: PNG truncated (no IEND chunk)")


def _read_png16(path: Path) -> np.ndarray:
    """Decode a non-interlaced 16-bit grey+alpha/RGB/RGBA PNG to uint16 (H, W, C). (Chunk
    CRCs are not checked; zlib's own checksum catches damaged pixel data.)"""
    data = path.read_bytes()
    ihdr, idat = None, []
    for kind, body in _png_chunks(data, path):
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body[:13])
        elif kind == b"IDAT":
            idat.append(body)
    if ihdr is None:
        raise ImageReadError(f"{path}: PNG without IHDR chunk")
    width, height, _, colour_type, _, _, _ = ihdr
    if width * height > MAX_PIXELS or not width or not height:
        raise ImageReadError(f"{path}: PNG size {width}x{height} out of range")
    channels = _PNG_CHANNELS[colour_type]
    bpp = 2 * channels
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as err:
        raise ImageReadError(f"{path}: corrupt PNG data ({err})") from err
    if len(raw) < height * (1 + width * bpp):
        raise ImageReadError(f"{path}: PNG data truncated")
    rows = np.frombuffer(raw, np.uint8, height * (1 + width * bpp)).reshape(height, -1)
    filters = rows[:, 0]
    if filters.max(initial=0) > 4:
        raise ImageReadError(f"{path}: unknown PNG filter type {int(filters.max())}")
    pixels = _png_unfilter(rows[:, 1:].reshape(height, width, bpp), filters)
    return pixels.view(">u2").reshape(height, width, channels).astype(np.uint16)


def _png_unfilter(filtered: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Undo PNG row filters, pixel by pixel along anti-diagonals: pixel (y, x) depends only on
    (y, x-1), (y-1, x) and (y-1, x-1), so each diagonal is one vectorised step."""
    height, width, bpp = filtered.shape
    out = np.zeros((height + 1, width + 1, bpp), np.int16)  # zero row/column = PNG's borders
    raw = filtered.astype(np.int16)
    if np.all(filters <= 2):  # None/Sub/Up only: whole rows at a time
        for y in range(height):
            row, f = raw[y], filters[y]
            if f == 1:
                row = np.cumsum(row, axis=0)
            elif f == 2:
                row = row + out[y, 1:]
            out[y + 1, 1:] = row & 255
        return out[1:, 1:].astype(np.uint8)
    for d in range(height + width - 1):
        ys = np.arange(max(0, d - width + 1), min(height - 1, d) + 1)
        xs = d - ys
        left, up, ul = out[ys + 1, xs], out[ys, xs + 1], out[ys, xs]
        f = filters[ys][:, None]
        p = left + up - ul
        pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - ul)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
        pred = np.select([f == 1, f == 2, f == 3, f == 4], [left, up, (left + up) >> 1, paeth], 0)
        out[ys + 1, xs + 1] = (raw[ys, xs] + pred) & 255
    return out[1:, 1:].astype(np.uint8)


def _encode_png16(arr: np.ndarray) -> bytes:
    height, width = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    rows = arr.astype(">u2").reshape(height, -1).view(np.uint8)
    raw = np.hstack([np.zeros((height, 1), np.uint8), rows])  # filter type 0 on every row
    ihdr = struct.pack(">IIBBBBB", width, height, 16, _PNG_COLOUR_TYPES[channels], 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body))
        + kind
        + body
        + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


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
            tmp.write_bytes(_encode_png16(arr))  # Pillow cannot write 16-bit colour PNG
        else:
            from PIL import Image

            Image.fromarray(np.ascontiguousarray(arr)).save(tmp, format="PNG")

    _write_atomically(path, "PNG", write)


def _write_atomically(path, what: str, write) -> None:
    """`write(tmp)` inside atomic_output; any failure becomes an ImageWriteError naming
    `path` (the OpenEXR binding raises RuntimeError, file systems OSError)."""
    try:
        with atomic_output(path) as tmp:
            write(tmp)
    except ImageWriteError:
        raise
    except (OSError, RuntimeError) as err:
        raise ImageWriteError(f"{path}: cannot write {what} ({err})") from err


# -- OpenEXR ------------------------------------------------------------------------------------
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
    _check_readable(path)
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
    return tuple(float(w) for w in weights)


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
    plain = {}
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
    _write_atomically(path, "OpenEXR file", lambda tmp: exr.File(attrs, channels).write(str(tmp)))


# -- Radiance RGBE ------------------------------------------------------------------------------
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
    _check_readable(path)
    data = path.read_bytes()
    header = _radiance_header(data, path)
    res_line = data[header.data_offset :].split(b"\n", 1)[0]
    axes = _radiance_resolution(res_line, path)
    body_start = header.data_offset + len(res_line) + 1
    (sign1, axis1, n1), (sign2, axis2, n2) = axes
    rgbe = _decode_rgbe(data[body_start:], n1, n2, path)
    if (axis1 == "Y" and sign1 == "+") or (axis1 == "X" and sign1 == "-"):
        rgbe = rgbe[::-1]
    if (axis2 == "Y" and sign2 == "+") or (axis2 == "X" and sign2 == "-"):
        rgbe = rgbe[:, ::-1]
    if axis1 == "X":  # scanlines are columns
        rgbe = rgbe.transpose(1, 0, 2)
    rgb = rgbe_to_float(rgbe)
    if apply_exposure and header.exposure != 1.0:
        rgb /= np.float32(header.exposure)
    return np.ascontiguousarray(rgb)


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


__all__ = [
    "ExrImage",
    "HDR_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "ImageWriteError",
    "LDR_EXTENSIONS",
    "atomic_output",
    "compression_names",
    "is_hdr_file",
    "is_image_file",
    "list_images",
    "read_exr",
    "read_image",
    "read_radiance",
    "rgbe_to_float",
    "write_exr",
    "write_png",
]
