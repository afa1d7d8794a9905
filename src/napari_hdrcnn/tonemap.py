"""Display helpers shared by the CLI previews, the napari reader and the widget."""

from __future__ import annotations

import numpy as np

# A napari layer gamma of 0.5 shows linear values as exposure_preview does: a square-root
# display encoding, close to the input photo's own where the network changed nothing.
DISPLAY_GAMMA = 0.5
EXPOSURE_RANGE = (-10.0, 4.0)  # stops: the brightest reconstructions need about 2^10 of headroom


def exposure_limits(stops: float) -> tuple[float, float]:
    """Contrast limits that show linear values at `stops` of exposure: 0 puts the input's white
    (1.0) at the top of the display range, -3 puts 8.0 there."""
    return 0.0, float(2.0 ** (-stops))


def exposure_of(contrast_limits) -> float:
    """The exposure (stops) whose top of the display range is that of `contrast_limits`."""
    hi = float(contrast_limits[1])
    return float(-np.log2(hi)) if hi > 0 else EXPOSURE_RANGE[1]


def exposure_preview(image: np.ndarray, stops: float = -3.0, linear: bool = True) -> np.ndarray:
    """8-bit preview as the authors' predictor writes it: `(2^stops * y) ** 0.5`.

    With linear=False the input is display-referred already (an LDR input), so only the
    exposure is applied, on the same display scale: in and out previews then match where the
    network changed nothing.
    """
    x = np.nan_to_num(np.asarray(image, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    x = np.maximum(x, 0.0)
    if linear:
        display = np.sqrt(x * np.float32(2.0**stops))
    else:
        display = x * np.float32(2.0 ** (stops / 2.0))
    return (np.clip(display, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def display_range(
    hdr: np.ndarray,
    low_pct: float = 1.0,
    high_pct: float = 99.5,
) -> tuple[tuple[float, float], float]:
    """Contrast limits and a display gamma that show an HDR image at once.

    Robust percentiles of the finite values, so one sun or a NaN does not leave a black frame;
    gamma 0.5 approximates a display encoding of linear values.
    """
    finite = np.asarray(hdr, np.float32)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return (0.0, 1.0), 1.0
    if finite.size > 1_000_000:  # a strided sample is enough for percentiles
        finite = finite[:: finite.size // 1_000_000 + 1]
    lo, hi = np.percentile(finite, [low_pct, high_pct])
    lo = max(float(lo), 0.0) if float(finite.min()) >= 0 else float(lo)
    if not hi > lo:
        hi = lo + (abs(lo) if lo else 1.0)
    return (float(lo), float(hi)), DISPLAY_GAMMA
