"""The pixel maths around the network, vectorised so that they cost little beside it.

Before the network: x^(1/gamma). After it: the blend of the linearised input with exp(y_log)
where the input is near white. Two things keep this cheap on a large frame:
- a pixel with blend weight 0 (most of a photo) is its linearised input, so exp() and the rest
  of the blend run only on the pixels the network replaces;
- 8- and 16-bit inputs at their own size take only 256 or 65536 values per channel, so the
  power curves (and the consistent blend's bounds) are computed once per value and looked up
  (`CodeTables`);
- the replaced pixels are gathered and scattered by index (numpy's take on rows of 3), several
  times faster than boolean-mask indexing of an (H, W, 3) array by an (H, W) mask.
The formulas are the functions below, applied to whole images, to the pixels that need them, or
to the table of values: one definition each.
"""

from __future__ import annotations

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
    network = np.clip(np.exp(np.minimum(y_log, MAX_LOG)) - np.float32(LOG_EPS), 0.0, MAX_HDR)
    if bounds is not None:
        low, high = bounds
        if gamma != 1.0:  # the bounds, like the network's output, in the 1/gamma domain
            low, high = (np.power(v, np.float32(1.0 / gamma)) for v in (low, high))
        network = np.clip(network, low, high)
    if gamma != 1.0:
        lin = np.power(lin, np.float32(1.0 / gamma))
    y = (1.0 - alpha) * lin + alpha * network
    if gamma != 1.0:
        y = np.power(np.maximum(y, 0.0), np.float32(gamma))
    return y.astype(np.float32, copy=False)


class CodeTables:
    """The curves of an integer input, per code value: x (after scaling), x^(1/gamma), the
    linearisation and (on first use) `measured_bounds`, computed once for the 2^bits codes and
    looked up per pixel."""

    def __init__(self, x_of_code: np.ndarray, method: str, gamma: float):
        self.x = x_of_code
        self.method = method
        self.net = network_input(x_of_code, gamma)
        self.lin = linearize(x_of_code, method)
        self._bounds: tuple[np.ndarray, np.ndarray] | None = None

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        if self._bounds is None:
            self._bounds = measured_bounds(self.x, self.method)
        return self._bounds


def _rows(a: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The pixels `index` (flat over H x W) of an (H, W, C) array, as (len(index), C)."""
    return np.take(a.reshape(-1, a.shape[-1]), index, axis=0)


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
    CodeTables (for the bounds of blend "consistent"). mask is the largest share of the
    pixel's channels taken from the network."""
    _check_blend(blend)
    # The share is the "max" blend's weight, and the largest per-channel weight, since the
    # weight rises with the level: so the per-channel weights are needed on replaced pixels only.
    share = blend_weight(x_net, "max")
    hdr = linearize(x, method) if lin is None else lin
    replaced = np.flatnonzero(share > 0)
    if replaced.size:  # only these pixels need exp() and the blend; the rest stay L(x)
        if not (hdr.dtype == np.float32 and hdr.flags.c_contiguous and hdr.flags.writeable):
            hdr = np.array(hdr, np.float32, order="C")
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
        hdr.reshape(-1, 3)[replaced] = blended(
            _rows(hdr, replaced), alpha, _rows(y_log, replaced), gamma, bounds
        )
    return hdr, share[..., 0]
