"""Seconds to score one 1920x1280 image by the SI-HDR protocol (napari_hdrcnn.metrics.score).

Usage: python benchmarks/bench_metrics.py [--repeat N] [--size WxH]
Prints the best and median wall-clock time and the best CPU time of N runs, with and without
the +CRF metrics, and the time of the
parts (PU21 encoding of one RGB image, SSIM of one luminance pair, CRF correction).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from napari_hdrcnn import metrics


def test_image(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A deterministic HDR scene (smooth tones, texture, bright highlights), its 95 % camera
    input, and the `ldr_linear` prediction."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / np.float32(width)
    tone = np.exp(4.0 * np.sin(6.0 * xx + 3.0 * yy))[..., None]
    ref = (
        tone
        * np.array([1.0, 0.9, 0.7], np.float32)
        * rng.uniform(0.95, 1.05, (height, width, 3)).astype(np.float32)
    ).astype(np.float32)
    e = 1.0 / np.percentile(ref.max(axis=-1), 95)
    ldr = np.floor(np.clip(ref * e, 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8)
    pred = ((ldr / np.float32(255)) ** np.float32(2.2)).astype(np.float32)
    return ref, ldr, pred


def timed(fn, repeat: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of each run (CPU time shows what a busy machine hides)."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", default="1920x1280")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    ref, ldr, pred = test_image(width, height)
    metrics.score(pred[:64, :64], ref[:64, :64], ldr[:64, :64])  # imports, first calls

    ref_abs = metrics.to_absolute(ref, metrics.absolute_scale(ref))
    pu_y = metrics.pu21_encode(metrics.luminance(ref_abs))
    rows = [
        ("score, all metrics incl. +CRF", lambda: metrics.score(pred, ref, ldr)),
        ("score without +CRF", lambda: metrics.score(pred, ref, ldr, crf=False)),
        ("  PU21 encoding of one RGB image", lambda: metrics.pu21_encode(ref_abs)),
        ("  PU21-SSIM of one luminance pair", lambda: metrics.pu21_ssim(pu_y, pu_y)),
        ("  CRF correction", lambda: metrics.crf_correct(ref_abs * 0.5, ref_abs)),
    ]
    print(f"{width}x{height}, {args.repeat} runs, seconds:")
    print(f"{'':<36} {'best':>7} {'median':>7} {'CPU':>7}")
    for label, fn in rows:
        wall, cpu = timed(fn, args.repeat)
        print(f"{label:<36} {min(wall):7.3f} {statistics.median(wall):7.3f} {min(cpu):7.3f}")


if __name__ == "__main__":
    main()
