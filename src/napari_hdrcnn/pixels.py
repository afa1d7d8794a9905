"""The pixel maths around the network, vectorised so that they cost little beside it.

Before the network: x^(1/gamma). After it: the blend of the linearised input with exp(y_log)
where the input is near white. These keep this cheap on a large frame:
- a pixel with blend weight 0 (most of a photo) is its linearised input, so exp() and the rest
  of the blend run only on the pixels the network replaces;
- 8- and 16-bit inputs at their own size take only 256 or 65536 values per channel, so the
  power curves, the "max" blend's weight (by the pixel's largest code) and the consistent
  blend's bounds are computed once per value and looked up (`CodeTables`; 8-bit codes two at a
  time, in cache-sized chunks);
- the replaced pixels are gathered by index (numpy's take on rows of 3) and scattered as one
  12-byte item each (np.put), several times faster than boolean-mask indexing of an (H, W, 3)
  array by an (H, W) mask or assigning rows by a fancy index;
- a large frame is blended in two bands of rows at once (`in_bands`: one in a worker thread,
  numpy lets go of the GIL; the network's threads are idle by then), the linearised frame looked
  up band by band into the output: after the network the frame's passes run with cold caches
  (not page faults: glibc reuses the freed frame-sized arrays), 11 ms at 1024x768 in one band
  against about 7 in two (run/network 1.15x -> 1.095x, interleaved A/B, sgemm 315 GFLOP/s);
- Reconstructor.run blends on the engine's own y_log (OpenVINO's output tensor, under its lock)
  instead of a copy (1.127x -> 1.107x).
The formulas are the functions below, applied to whole images, to the pixels that need them, or
to the table of values: one definition each.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .architecture import LOG_EPS, blend_alpha
from .weights import BLENDS, LINEARIZATIONS

MAX_HDR = np.float32(65504.0)  # the largest half float: EXR output stays finite
MAX_LOG = np.float32(np.log(65504.0 + LOG_EPS))


def linearize(x: np.ndarray, method: str) -> np.ndarray:
    """Display-referred [0, 1] -> linear; every curve maps 1 to 1 so the blend stays seamless."""
    if method == "square":
        return np.square(x)
    if method == "gamma2.2":
        return np.power(x, np.float32(2.2))
    if method == "srgb":
        return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)
    raise ValueError(f"unknown linearisation {method!r}; one of {', '.join(LINEARIZATIONS)}")


def channel_max(x: np.ndarray) -> np.ndarray:
    """max over the last axis (3 channels), kept as an axis of 1: elementwise maxima, which
    numpy does many times faster than a reduction over a short last axis."""
    return np.maximum(np.maximum(x[..., :1], x[..., 1:2]), x[..., 2:3])


def _check_blend(blend: str) -> None:
    if blend not in BLENDS:
        raise ValueError(f"unknown blend {blend!r}; one of {', '.join(BLENDS)}")


def blend_weight(x_net: np.ndarray, blend: str = "max") -> np.ndarray:
    """architecture.blend_alpha of the level: 1 at clipping, 0 below 1 - tau.

    blend "max" (the authors'): level = max_c x, shape (..., 1); "per-channel": level = x,
    shape (..., 3), so a channel below 1 - tau keeps its measured value.
    """
    _check_blend(blend)
    level = channel_max(x_net) if blend == "max" else x_net
    return blend_alpha(level).astype(np.float32)


MEASUREMENT_TOLERANCE = 1.0 / 255  # display units: 8-bit rounding plus a little noise


def measured_bounds(x: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the linear values a photo's pixels allow: (low, high), each like `x`.

    A channel below white lies within `MEASUREMENT_TOLERANCE` of its display value, so its
    linear value is bounded on both sides; a clipped channel (within half a code of white) is
    at least white's lower edge and unbounded above. Holding the network to these bounds
    (blend "consistent") removes any boost it gives pixels that did not clip, the harm a
    reconstruction does where the highlights are only a little above white.
    """
    tol = np.float32(MEASUREMENT_TOLERANCE)
    low = linearize(np.clip(x - tol, 0.0, 1.0), method)
    high = linearize(np.clip(x + tol, 0.0, 1.0), method)
    clipped = x >= np.float32(1.0 - 0.5 / 255)
    return low, np.where(clipped, np.float32(np.inf), high).astype(np.float32)


def network_input(x: np.ndarray, gamma: float) -> np.ndarray:
    """What the network sees: x^(1/gamma)."""
    return np.power(x, np.float32(1.0 / gamma)) if gamma != 1.0 else x


def blended(
    lin: np.ndarray, alpha: np.ndarray, y_log: np.ndarray, gamma: float, bounds=None
) -> np.ndarray:
    """The authors' blend, y = ((1 - a) L(x)^(1/g) + a n)^g, n = exp(y_log) - eps: with
    L(x) = x^2 it is their f(x^(1/g))^g exactly, and pixels away from clipping stay L(x).
    bounds: (low, high) of `measured_bounds` for blend "consistent", n is held to them."""
    # Capped at the half-float maximum: an untrained or foreign model may overflow exp(),
    # and 0 * inf in the blend would turn unreplaced pixels into NaN.
    # (float32 arrays; each step after the first writes into the array it made, the same
    # operations in the same order as out-of-place, without a new array per step)
    network = np.minimum(y_log, MAX_LOG)
    np.exp(network, out=network)
    network -= np.float32(LOG_EPS)
    np.clip(network, 0.0, MAX_HDR, out=network)
    if bounds is not None:
        low, high = bounds
        if gamma != 1.0:  # the bounds, like the network's output, in the 1/gamma domain
            low, high = (np.power(v, np.float32(1.0 / gamma)) for v in (low, high))
        np.clip(network, low, high, out=network)
    if gamma != 1.0:
        lin = np.power(lin, np.float32(1.0 / gamma))
    y = (1.0 - alpha) * lin
    network *= alpha
    y += network
    if gamma != 1.0:
        np.maximum(y, 0.0, out=y)
        np.power(y, np.float32(gamma), out=y)
    return y.astype(np.float32, copy=False)


class CodeTables:
    """The curves of an integer input, per code value: x (after scaling), x^(1/gamma), the
    linearisation, the "max" blend's weight of a pixel whose largest code is the code, and (on
    first use) `measured_bounds`, computed once for the 2^bits codes and looked up per pixel
    (`look_up`)."""

    def __init__(self, x_of_code: np.ndarray, method: str, gamma: float):
        self.x = x_of_code
        self.method = method
        self.net = network_input(x_of_code, gamma)
        self.lin = linearize(x_of_code, method)
        # x^(1/gamma) never falls as the code rises, so the largest channel's value is the
        # value of the largest code, and blend_weight(x_net, "max") is this, per largest code
        self.share = blend_alpha(self.net).astype(np.float32)
        self._bounds: tuple[np.ndarray, np.ndarray] | None = None
        self._pairs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._pairs_lock = threading.Lock()

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        if self._bounds is None:
            self._bounds = measured_bounds(self.x, self.method)
        return self._bounds

    def look_up(self, table: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """table[codes], float32 like `codes`. numpy's take makes a 64-bit index of every code
        it is given, so 8-bit codes are looked up two at a time (a table of the 65536 pairs of
        values, 512 KiB): about 3x faster; and in chunks that keep those indices in the cache
        (another 1.4x)."""
        out = np.empty(codes.shape, table.dtype)
        self.look_up_into(table, codes, out)
        return out

    def look_up_into(self, table: np.ndarray, codes: np.ndarray, out: np.ndarray) -> None:
        """`look_up` written into `out` (C-contiguous, the shape of `codes`, table's dtype)."""
        if not (codes.dtype == np.uint8 and codes.size % 2 == 0 and codes.flags.c_contiguous):
            _take_chunked(table, codes, out.reshape(-1))
            return
        with self._pairs_lock:
            cached = self._pairs.get(id(table))
            if cached is None or cached[0] is not table:
                pairs = np.empty((256, 256, 2), np.float32)
                low, high = (0, 1) if sys.byteorder == "little" else (1, 0)
                pairs[..., low] = table[None, :]  # the first code of a pair is its low byte
                pairs[..., high] = table[:, None]
                cached = (table, pairs.reshape(-1).view(np.uint64))
                self._pairs[id(table)] = cached
        _take_chunked(cached[1], codes.reshape(-1).view(np.uint16), out.reshape(-1).view(np.uint64))


TAKE_CHUNK = 1 << 15  # codes per np.take in _take_chunked: 256 KiB of 64-bit indices


def _take_chunked(table: np.ndarray, codes: np.ndarray, out: np.ndarray) -> None:
    """out = table[codes] (flat, C-contiguous), codes all within the table, TAKE_CHUNK codes at
    a time."""
    codes = codes.reshape(-1)
    for i in range(0, codes.size, TAKE_CHUNK):
        # mode "clip" writes straight into `out` ("raise" buffers it); no code is clipped
        np.take(table, codes[i : i + TAKE_CHUNK], out=out[i : i + TAKE_CHUNK], mode="clip")


def _rows(a: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The pixels `index` (flat over H x W) of an (H, W, C) array, as (len(index), C)."""
    return np.take(a.reshape(-1, a.shape[-1]), index, axis=0)


def _put_rows(a: np.ndarray, index: np.ndarray, rows: np.ndarray) -> None:
    """a's pixels `index` = rows (float32 (len(index), C)): each pixel as one C x 4-byte item,
    several times faster than assigning rows of a 2-D view by a fancy index."""
    pixel = f"V{4 * a.shape[-1]}"
    items = np.ascontiguousarray(rows, np.float32).view(pixel).reshape(-1)
    np.put(a.reshape(-1, a.shape[-1]).view(pixel).reshape(-1), index, items)


BAND_PIXELS = 1 << 18  # frames of at least twice this many pixels blend in two halves


def _worker() -> ThreadPoolExecutor:
    """The worker thread's pool, one per process (a forked child makes its own: the parent's
    thread is not there)."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None or _WORKER[0] != os.getpid():
            _WORKER = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="hdrcnn-pixels"))
        return _WORKER[1]


_WORKER: tuple[int, ThreadPoolExecutor] | None = None
_WORKER_LOCK = threading.Lock()


def in_bands(height: int, width: int, work: Callable[[int, int], None]) -> None:
    """work(r0, r1) over the rows [0, height): in two bands at once on a large frame (the top in
    a worker thread, the bottom here; numpy's loops let go of the GIL), else in one."""
    if height < 2 or height * width < 2 * BAND_PIXELS or (os.cpu_count() or 1) < 2:
        work(0, height)
        return
    half = height // 2
    top = _worker().submit(work, 0, half)
    try:
        work(half, height)
    finally:
        top.result()


def blend_hdr(
    x: np.ndarray,
    x_net: np.ndarray,
    y_log: np.ndarray,
    method: str,
    blend: str,
    gamma: float,
    lin: np.ndarray | None = None,
    coded: tuple[np.ndarray, CodeTables] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(hdr (H, W, 3), mask (H, W)) from the input x in [0, 1] (after scaling), the network's
    input x_net and output y_log; `lin` is linearize(x) when the caller has it (a float32 array
    of its own: the blend is written into it), `coded` the input's codes (H, W, 3) and their
    CodeTables (the linearisation, when `lin` is not given, and the bounds of blend
    "consistent" are looked up). mask is the largest share of the pixel's channels taken from
    the network. A large frame is done in two bands of rows at once (`in_bands`): every step
    is per pixel, so the result is the same."""
    _check_blend(blend)
    if lin is None:
        hdr = np.empty(x.shape, np.float32)
    elif lin.dtype == np.float32 and lin.flags.c_contiguous and lin.flags.writeable:
        hdr = lin
    else:
        hdr = np.array(lin, np.float32, order="C")
    share = np.empty((*x.shape[:2], 1), np.float32)

    def band(r0: int, r1: int) -> None:
        rows = slice(r0, r1)
        _blend_band(
            x[rows],
            x_net[rows],
            y_log[rows],
            method,
            blend,
            gamma,
            hdr[rows],
            lin is None,
            share[rows],
            None if coded is None else (coded[0][rows], coded[1]),
        )

    in_bands(x.shape[0], x.shape[1], band)
    return hdr, share[..., 0]


def _blend_band(
    x: np.ndarray,
    x_net: np.ndarray,
    y_log: np.ndarray,
    method: str,
    blend: str,
    gamma: float,
    hdr: np.ndarray,
    linearize_into: bool,
    share: np.ndarray,
    coded: tuple[np.ndarray, CodeTables] | None,
) -> None:
    """blend_hdr on rows of the frame: hdr (linearised here first when `linearize_into`) and
    share (H, W, 1) are the band's rows of blend_hdr's arrays, written in place."""
    if linearize_into:
        if coded is not None:
            coded[1].look_up_into(coded[1].lin, coded[0], hdr)
        else:
            hdr[...] = linearize(x, method)
    # The share is the "max" blend's weight, and the largest per-channel weight, since the
    # weight rises with the level: so the per-channel weights are needed on replaced pixels only.
    if coded is not None:  # looked up by the pixel's largest code (CodeTables.share)
        top = channel_max(coded[0])
        weighted = np.flatnonzero(coded[1].share > 0)  # the codes at or above the first one
        replaced = np.flatnonzero(top >= int(weighted[0])) if weighted.size else weighted
        share[...] = 0.0
        np.put(share, replaced, np.take(coded[1].share, np.take(top, replaced)))
    else:
        share[...] = blend_weight(x_net, "max")
        replaced = np.flatnonzero(share > 0)
    if replaced.size:  # only these pixels need exp() and the blend; the rest stay L(x)
        if blend == "max":
            alpha = _rows(share, replaced)
        else:
            alpha = blend_weight(_rows(x_net, replaced), blend)
        bounds = None
        if blend == "consistent" and coded is not None:
            codes = _rows(coded[0], replaced)
            bounds = tuple(np.take(table, codes) for table in coded[1].bounds())
        elif blend == "consistent":
            bounds = measured_bounds(_rows(x, replaced), method)
        _put_rows(
            hdr,
            replaced,
            blended(_rows(hdr, replaced), alpha, _rows(y_log, replaced), gamma, bounds),
        )
