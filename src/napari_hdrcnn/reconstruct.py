"""The reconstruction core: numpy in, numpy out.

Everything a face of the product needs (CLI, napari widget, scripts, workers) is here: input
conversion, scaling and gamma as in the authors' predictor, the linearisation of the pixels the
network does not replace, the two sizing modes, tiling with smooth blending under a memory
budget, and progress/cancel callbacks. The network runs on an engine (napari_hdrcnn.engines),
imported only when the network is built; the pixel maths around it are napari_hdrcnn.pixels.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from . import pixels
from .options import MULTIPLE, ReconstructOptions
from .pixels import linearize as linearize_pixels  # noqa: F401  (training and tests use it)
from .weights import Weights, load_weights

T = TypeVar("T")
ProgressCallback = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


class ReconstructionCancelled(Exception):
    """Raised between tiles when the cancel check returns True."""


class InputImageError(ValueError):
    """An input array the reconstruction cannot take; the message says why."""


@dataclass
class Reconstruction:
    """The result of one frame.

    hdr:   linear HDR, float32, relative scale (the input's white is about 1); (H, W, 3), or
           (H, W) for a grey input, or (H, W, 4) with the input's alpha passed through.
    mask:  float32 (H, W) in [0, 1]: where the network replaced the linearised input (with the
           per-channel blend, the largest share over the pixel's channels).
    ldr:   the network's input as float32 RGB in [0, 1] after sizing and scaling (for previews).
    """

    hdr: np.ndarray
    mask: np.ndarray
    ldr: np.ndarray


# -- input ---------------------------------------------------------------------------------------
INTEGER_LEVELS = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def as_unit_rgb(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Any supported array -> (float32 RGB in [0, 1], alpha or None, was_grey).

    8- and 16-bit integers are divided by their maximum; floats must already lie in [0, 1].
    """
    a = np.asarray(image)
    if a.dtype == bool or a.dtype.kind not in "uif":
        raise InputImageError(f"unsupported pixel type {a.dtype}; expected 8/16-bit or float")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4):
        raise InputImageError(
            f"unsupported image shape {np.shape(image)}; expected (H, W), (H, W, 1-4)"
        )
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise InputImageError(f"empty image of shape {np.shape(image)}")
    if a.dtype in INTEGER_LEVELS:  # one pass: the codes as float32, divided in float32
        x = np.divide(a, np.float32(INTEGER_LEVELS[a.dtype]), dtype=np.float32)
    elif a.dtype.kind in "ui":
        raise InputImageError(f"unsupported integer type {a.dtype}; convert to 8 or 16 bit")
    else:
        x = a.astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise InputImageError("the image holds NaN or Inf values")
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise InputImageError(
                f"float input must be display-referred in [0, 1], found "
                f"[{lo:.4g}, {hi:.4g}]; is it already HDR?"
            )
        x = np.clip(x, 0.0, 1.0)
    colour, alpha = _split_channels(x)
    return colour, (alpha.copy() if alpha is not None else None), x.shape[-1] <= 2


def _split_channels(a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, 1-4) -> (RGB (H, W, 3), alpha or None): grey is repeated, alpha is the last."""
    channels = a.shape[-1]
    alpha = a[..., -1] if channels in (2, 4) else None
    colour = a[..., :3] if channels >= 3 else np.repeat(a[..., :1], 3, axis=-1)
    return np.ascontiguousarray(colour), alpha


def code_values(image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """For an 8- or 16-bit image: (its RGB codes (H, W, 3), the [0, 1] value of each code, as
    as_unit_rgb computes it); None for floats. Curves of the values are then table look-ups."""
    a = np.asarray(image)
    top = INTEGER_LEVELS.get(a.dtype)
    if top is None:
        return None
    codes, _ = _split_channels(a[..., None] if a.ndim == 2 else a)
    return codes, np.arange(int(top) + 1, dtype=np.float32) / top


def scaled(x: np.ndarray, scaling: float) -> np.ndarray:
    """As the reference: scaling > 1 pushes near-white JPEG noise into clipping."""
    return np.minimum(1.0, x * np.float32(scaling)) if scaling > 1.0 else x


def reference_size(width: int, height: int) -> tuple[int, int]:
    """The authors' predictor rounds each to the nearest multiple of 32, at least 32."""

    def r(v: int) -> int:
        return max(MULTIPLE, int(round(v / MULTIPLE)) * MULTIPLE)

    return r(width), r(height)


def reference_resize(x: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre crop to the target aspect, then bilinear resize (the reference predictor)."""
    from PIL import Image

    width, height = reference_size(width, height)
    h, w = x.shape[:2]
    target_aspect = width / height
    if w / h > target_aspect:  # too wide: crop columns
        cw = max(1, int(round(h * target_aspect)))
        x0 = (w - cw) // 2
        x = x[:, x0 : x0 + cw]
    else:
        ch = max(1, int(round(w / target_aspect)))
        y0 = (h - ch) // 2
        x = x[y0 : y0 + ch]
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(x[..., c]), mode="F").resize(
                (width, height), Image.Resampling.BILINEAR
            )
        )
        for c in range(x.shape[-1])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)


def reflect_pad(x: np.ndarray, pad_h: int, pad_w: int) -> np.ndarray:
    """Pad bottom/right by mirroring; repeats the mirror for images smaller than the pad."""
    while pad_h > 0 or pad_w > 0:
        step_h = min(pad_h, max(x.shape[0] - 1, 0))
        step_w = min(pad_w, max(x.shape[1] - 1, 0))
        if step_h == 0 and step_w == 0:  # a 1-pixel dimension: repeat the edge
            return np.pad(x, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        x = np.pad(x, ((0, step_h), (0, step_w), (0, 0)), mode="reflect")
        pad_h -= step_h
        pad_w -= step_w
    return x


# -- tiling ---------------------------------------------------------------------------------------
def bytes_per_pixel(width_factor: float, engine: str = "tensorflow") -> float:
    """Bytes of memory per input pixel of a tile, per engine: what the tile size is chosen by.

    One forward pass measured (benchmarks/bench_predict.py --memory --widths 0.125 0.25 1.0):
    OpenVINO, one compiled model per size, 241 / 368 / 808 bytes per pixel, about
    600 * width + 220; TensorFlow 301 / 448 / 1561. The formulas are about 2.5 and 2 times
    that, so that with the frame's own arrays (input, linearised frame, the tiles' sum and the
    blend: a numpy peak of 1.4 GiB at 24 megapixels) and the process's libraries a
    24-megapixel photo peaks within the 4 GiB default (OpenVINO measured with --big; the
    TensorFlow formula's 4.0 GiB at width 1 is an earlier measurement)."""
    if engine == "openvino":
        return 1500.0 * width_factor + 550.0
    return 3000.0 * width_factor + 200.0


def tile_size_for_budget(
    width_factor: float, memory_budget_mb: float, engine: str = "tensorflow"
) -> int:
    side = int(math.sqrt(memory_budget_mb * 2**20 / bytes_per_pixel(width_factor, engine)))
    return max(4 * MULTIPLE, side // MULTIPLE * MULTIPLE)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length), overlapping >= `overlap`."""
    if tile >= length:
        return [0]
    step = tile - overlap
    n = math.ceil((length - tile) / step) + 1
    return [int(round(i * (length - tile) / (n - 1))) for i in range(n)]


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blending weight: raised-cosine ramps where the tile meets a neighbour."""
    w = np.ones(length, np.float32)
    if overlap <= 0:
        return w
    r = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap, dtype=np.float32) + 0.5) / overlap)
    if not at_start:
        w[:overlap] = r
    if not at_end:
        w[-overlap:] = np.minimum(w[-overlap:], r[::-1])
    return w


# -- the reconstructor ---------------------------------------------------------------------------
def configure_device(device: str) -> None:
    """Hide the GPUs before TensorFlow initialises when the CPU is asked for."""
    ReconstructOptions(device=device)  # refuses an unknown device
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"


class DeviceError(ValueError):
    """The device asked for is not there: a bad choice for this machine, refused up front."""


def require_device(device: str) -> None:
    """Refuse 'gpu' when TensorFlow sees no GPU, saying why, before any work starts ('auto'
    falls back to the CPU by itself). Imports TensorFlow, for 'gpu' only; call it after
    `configure_device`."""
    configure_device(device)
    if device != "gpu":
        return
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return
    if tf.test.is_built_with_cuda():
        why = "no usable NVIDIA GPU or driver (see nvidia-smi; CUDA_VISIBLE_DEVICES hides GPUs)"
    else:
        why = (
            "the installed TensorFlow has no CUDA support (on Linux: "
            "pip install 'napari-hdrcnn[gpu]')"
        )
    raise DeviceError(
        f"TensorFlow sees no GPU: {why}; use 'auto' (the GPU when there is one, else the "
        "CPU) or 'cpu'"
    )


class Reconstructor:
    """A loaded model and the options of the reconstruction; reuse it for many frames.

    options (or its fields as keywords, `Reconstructor(w, device="cpu")`) are the defaults of
    `run`; the device and the engine are chosen here, once, and every run uses them. The
    network is built at the first frame (or `network()`).
    """

    def __init__(
        self,
        weights: str | os.PathLike | Weights = "default",
        options: ReconstructOptions | None = None,
        **fields,
    ):
        self.options = ReconstructOptions.of(options, **fields)
        require_device(self.options.device)
        self.weights = load_weights(weights)
        self._network = None
        self._lock = threading.Lock()
        self._tables: dict[tuple, pixels.CodeTables] = {}

    @property
    def device(self) -> str:
        return self.options.device

    @property
    def width_factor(self) -> float:
        return self.weights.width_factor

    def network(self):
        """The network on its engine (built once): `predict_log`, the pixel steps, `engine`."""
        with self._lock:
            if self._network is None:
                from .engines import build_network

                self._network = build_network(self.weights, self.options)
            return self._network

    @property
    def engine(self) -> str:
        """The engine that runs the network ('openvino' or 'tensorflow'); builds it."""
        return self.network().engine

    def predict_log(self, x: np.ndarray) -> np.ndarray:
        """Raw network output y_log for one (H, W, 3) image with H, W multiples of 32."""
        return self.network().predict_log(x)

    def run(
        self,
        image: np.ndarray,
        options: ReconstructOptions | None = None,
        *,
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
        **fields,
    ) -> Reconstruction:
        """Reconstruct one frame with `options` (default: this Reconstructor's), with `fields`
        changed (`run(image, gamma=1.2)`). See `ReconstructOptions` for the options."""
        opts = ReconstructOptions.of(options or self.options, **fields)
        if opts.build_fields() != self.options.build_fields():
            raise ValueError(
                f"this Reconstructor was built for {self.options.build_fields()}; options for "
                f"{opts.build_fields()} need a Reconstructor of their own"
            )
        gamma, scaling = opts.gamma, opts.scaling
        method = opts.linearize or self.weights.linearize
        blend = opts.blend or self.weights.blend

        x, alpha_channel, was_grey = as_unit_rgb(image)
        if opts.sizing == "reference":
            width, height = opts.width, opts.height
            assert width is not None and height is not None  # ReconstructOptions checks it
            x = reference_resize(x, width, height)
            if alpha_channel is not None:
                alpha_channel = reference_resize(alpha_channel[..., None], width, height)[..., 0]
        x = scaled(x, scaling)
        # 8/16-bit at their own size: the curves per code value, looked up (pixels.CodeTables)
        codes = code_values(image) if opts.sizing == "native" else None
        coded = None
        if codes is not None:
            tables = self._code_tables(codes[1], scaling, method, gamma)
            x_net = tables.look_up(tables.net, codes[0]) if gamma != 1.0 else x
            coded = (codes[0], tables)
        else:
            x_net = pixels.network_input(x, gamma)
        # The blend reads y_log where the engine holds it (no copy of the frame); the
        # linearised frame is made (looked up, with `coded`) by the blend, after the network,
        # so that it never sits beside the tiles.
        y, mask = self._log_prediction(
            x_net,
            opts,
            progress,
            cancelled,
            lambda y_log: pixels.blend_hdr(x, x_net, y_log, method, blend, gamma, None, coded),
        )

        if was_grey:
            hdr = y.mean(axis=-1, dtype=np.float32)
        else:
            hdr = y
        if alpha_channel is not None:
            hdr = np.concatenate(
                [hdr if hdr.ndim == 3 else hdr[..., None], alpha_channel[..., None]], axis=-1
            )
        return Reconstruction(hdr=hdr, mask=mask, ldr=x)

    def _code_tables(
        self, x_of_code: np.ndarray, scaling: float, method: str, gamma: float
    ) -> pixels.CodeTables:
        """pixels.CodeTables of 8/16-bit codes, kept for the next frames with these options."""
        key = (x_of_code.size, scaling, method, gamma)
        tables = self._tables.get(key)
        if tables is None:
            if len(self._tables) >= 8:
                self._tables.clear()
            tables = pixels.CodeTables(scaled(x_of_code, scaling), method, gamma)
            self._tables[key] = tables
        return tables

    def log_prediction(
        self,
        x: np.ndarray,
        options: ReconstructOptions | None = None,
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
    ) -> np.ndarray:
        """y_log for the network input x, float32 (H, W, 3) of any size: reflect-padded to a
        multiple of 32, in tiles (options.tile, overlap, memory budget) blended in the log
        domain."""
        return self._log_prediction(x, options, progress, cancelled, None)

    def _log_prediction(
        self,
        x: np.ndarray,
        options: ReconstructOptions | None,
        progress: ProgressCallback | None,
        cancelled: CancelCheck | None,
        use: Callable[[np.ndarray], T] | None,
    ) -> Any:
        """log_prediction, or use(y_log) with `use`: then an untiled y_log is the engine's own
        output, read in place (`_with_log`) and valid only during the call."""
        opts = options or self.options
        tile, overlap = opts.tile, opts.overlap
        h, w = x.shape[:2]
        ph, pw = -h % MULTIPLE, -w % MULTIPLE
        xp = reflect_pad(x, ph, pw)
        H, W = xp.shape[:2]
        if tile is None:
            tile = tile_size_for_budget(
                self.width_factor, opts.memory_budget_mb, self.network().engine
            )
        overlap = min(overlap, tile // 2)
        th, tw = min(tile, H), min(tile, W)
        ys, xs = tile_starts(H, th, overlap), tile_starts(W, tw, overlap)
        total = len(ys) * len(xs)

        def check_cancel():
            if cancelled is not None and cancelled():
                raise ReconstructionCancelled("reconstruction cancelled")

        check_cancel()
        if progress is not None:
            progress(0, total)
        if total == 1:
            out: Any = (
                self.predict_log(xp)[:h, :w]
                if use is None
                else self._with_log(xp, lambda y_log: use(y_log[:h, :w]))
            )
            if progress is not None:
                progress(1, 1)
            return out

        acc = np.zeros((H, W, 3), np.float32)
        wsum = np.zeros((H, W, 1), np.float32)
        done = 0
        for y0 in ys:
            wy = _ramp(th, overlap, y0 == 0, y0 + th == H)
            for x0 in xs:
                check_cancel()
                wx = _ramp(tw, overlap, x0 == 0, x0 + tw == W)
                weight = (wy[:, None] * wx[None, :])[..., None]
                pred = self.predict_log(xp[y0 : y0 + th, x0 : x0 + tw])
                acc[y0 : y0 + th, x0 : x0 + tw] += weight * pred
                wsum[y0 : y0 + th, x0 : x0 + tw] += weight
                done += 1
                if progress is not None:
                    progress(done, total)
        del xp
        # Blending happens in the log domain, where the network's output is smooth.
        acc /= np.maximum(wsum, 1e-12)
        return acc[:h, :w] if use is None else use(acc[:h, :w])

    def _with_log(self, x: np.ndarray, use: Callable[[np.ndarray], T]) -> T:
        """use(predict_log(x)), on the engine's own output where it offers it (`with_log`)."""
        network = self.network()
        with_log = getattr(network, "with_log", None)
        return use(network.predict_log(x)) if with_log is None else with_log(x, use)


_CACHE: dict[tuple, Reconstructor] = {}
_CACHE_LOCK = threading.Lock()


def get_reconstructor(
    weights: str | os.PathLike | Weights = "default", options: ReconstructOptions | None = None
) -> Reconstructor:
    """A cached Reconstructor per (weights, build fields), so scripts pay for loading once."""
    options = ReconstructOptions.of(options)
    if isinstance(weights, Weights):
        return Reconstructor(weights, options)
    key = (os.fspath(weights), *options.build_fields().values())
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = Reconstructor(weights, options)
        return _CACHE[key]


def reconstruct(
    image: np.ndarray,
    weights: str | os.PathLike | Weights = "default",
    options: ReconstructOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
    return_mask: bool = False,
    **fields,
):
    """Reconstruct an HDR image from an 8-bit, 16-bit or [0, 1] float photo.

    image:       (H, W), (H, W, 1-4); uint8, uint16 or float in [0, 1]. Never modified.
    weights:     'default', 'hdrcnn', 'hdrcnn-compr', 'hdrcnn-compr-regularized', a path, or a
                 loaded `Weights`.
    options:     a `ReconstructOptions`, and/or its fields as keywords: gamma, scaling,
                 linearize, blend, sizing, width, height, tile, overlap, memory_budget_mb,
                 device (each field's help says what it does).
    progress:    called as progress(done_tiles, total_tiles).
    cancelled:   polled before each tile; returning True raises ReconstructionCancelled.
    Returns the float32 linear HDR image, or (hdr, mask) with return_mask=True.
    """
    options = ReconstructOptions.of(options, **fields)
    result = get_reconstructor(weights, options).run(
        image, options, progress=progress, cancelled=cancelled
    )
    return (result.hdr, result.mask) if return_mask else result.hdr
