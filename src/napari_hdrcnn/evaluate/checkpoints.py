"""The protocol's one figure for choosing training steps: the clipped-region PU21-PSNR gain
over `ldr_linear` (as `hdrcnn evaluate` measures it: the protocol's camera, the package's blend
and metrics), without the CRF correction and SSIM, so that it is cheap enough to score every
checkpoint. The training loss does not predict it: a CPU fine-tune's validation loss fell from
0.0120 (step 1000) to 0.0104 (step 2000) while this gain went from +1.57 to +1.34 dB, both
below the +2.34 it started from (README, stage 6 attempt 3).

The network is any `predict_log(x (1, H, W, 3) float32, H and W multiples of 32) -> y_log`, so
the JAX trainer (scripts/gpu/train_jax.py) and `scripts/score_checkpoints.py` (weight files on
this package's engines) score alike. Imports neither TensorFlow nor an engine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import metrics, pixels
from ..options import MULTIPLE
from ..reconstruct import reflect_pad
from .protocol import as_reference, camera_ldr

HARM_DB = 1.0  # a scene this far below ldr_linear counts as harmed (the do-no-harm bar)

Gain = tuple[str, float, float]  # (scene, clip level, gain in dB)


class CheckpointScorer:
    """The test inputs of some reference scenes at some clip levels, prepared once; `gains`
    scores a network on all of them."""

    def __init__(
        self,
        scenes: list[tuple[str, np.ndarray]],
        clips: list[float],
        linearize: str = "gamma2.2",
        blend: str = "consistent",
    ):
        self.linearize, self.blend = linearize, blend
        self.cases = []
        for name, hdr in scenes:
            reference = as_reference(hdr, Path(name))
            for clip in clips:
                ldr, _ = camera_ldr(reference, clip)
                scoring = metrics.ScoringReference(reference, ldr)
                x = np.divide(ldr, np.float32(255.0), dtype=np.float32)
                baseline = clipped_psnr(scoring, metrics.ldr_linear(ldr))
                self.cases.append((name, clip, x, scoring, baseline))
        if not self.cases:
            raise ValueError("no validation scenes to score")

    def gains(self, predict_log: Callable[[np.ndarray], np.ndarray]) -> list[Gain]:
        out = []
        for name, clip, x, scoring, baseline in self.cases:
            h, w = x.shape[:2]
            padded = reflect_pad(x, -h % MULTIPLE, -w % MULTIPLE)
            y_log = np.asarray(predict_log(padded[None]), np.float32)[0, :h, :w]
            hdr, _ = pixels.blend_hdr(x, x, y_log, self.linearize, self.blend, 1.0)
            out.append((name, clip, clipped_psnr(scoring, hdr) - baseline))
        return out


def clipped_psnr(scoring: metrics.ScoringReference, prediction: np.ndarray) -> float:
    """PU21-PSNR over the clipped region, after the protocol's gain alignment."""
    aligned, _ = scoring.aligned(metrics.finite_prediction(prediction))
    return metrics.pu21_psnr(metrics.pu21_encode(aligned), scoring.pu, scoring.clipped)


def summary(gains: list[Gain]) -> dict[float, tuple[float, float, int]]:
    """Per clip level: (mean gain, worst gain, scenes more than HARM_DB below ldr_linear)."""
    by_clip: dict[float, list[float]] = {}
    for _, clip, gain in gains:
        by_clip.setdefault(clip, []).append(gain)
    return {
        clip: (float(np.mean(v)), min(v), sum(g < -HARM_DB for g in v))
        for clip, v in by_clip.items()
    }


CSV_HEADER = "step,weights,clip,mean_gain,worst_gain,harmed"


def csv_rows(step: int, weights: str, gains: list[Gain]) -> list[str]:
    """Lines of the scores' CSV (CSV_HEADER) for one network."""
    return [
        f"{step},{weights},{clip:g},{mean:.4f},{worst:.4f},{harmed}"
        for clip, (mean, worst, harmed) in summary(gains).items()
    ]
