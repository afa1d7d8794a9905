"""The illuminance half of the authors' loss, without TensorFlow: luminance weights and the
13-tap Gaussian that blurs log luminance. `losses` (TensorFlow) and scripts/gpu/train_jax.py
(JAX) both build their blur from these."""

from __future__ import annotations

import math

import numpy as np

ILLUMINANCE_WEIGHTS = (0.213, 0.715, 0.072)  # the authors' luminance weights


def gaussian_taps(size: int = 13, nsig: float = 2.0) -> np.ndarray:
    """The authors' 1-D factor of their 13x13 illuminance blur: sqrt of the Gaussian's mass per
    tap over +-nsig (their 2-D kernel is sqrt(outer(k, k)), normalised), normalised."""
    interval = (2 * nsig + 1.0) / size
    edges = np.linspace(-nsig - interval / 2.0, nsig + interval / 2.0, size + 1)
    cdf = np.array([0.5 * (1 + math.erf(e / math.sqrt(2))) for e in edges])
    taps = np.sqrt(np.diff(cdf))
    return (taps / taps.sum()).astype(np.float32)
