"""Frames per second of `hdrcnn predict` on a video: the plain loop, and Dask local clusters.

Prints figures; never pass/fail. A synthetic lossless video is made first (default 24 frames of
512x384); each case reconstructs all of it into a fresh folder (EXR outputs, as the CLI with a
video input) with the shipped default model. Model loading is timed apart: the plain loop's
model is built and traced before the clock starts, as each worker's is when the cluster starts
(`dask_runner.ModelPlugin`). Workers run TensorFlow with its default threads (one per core,
outputs identical to the plain loop's) and, as extra cases, with cores / workers threads. The
per-frame overhead of the Dask path is
(seconds with 1 worker - seconds of the plain loop) / frames: sending pixels to the worker,
scheduling, and the hand-back in order.

    python benchmarks/bench_scale.py                    # plain, 1 worker, 2 workers
    python benchmarks/bench_scale.py --frames 48 --size 1024x768 --workers 1,2,4
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_frames(n: int, width: int, height: int):
    """A gradient with noise and a clipped sun that moves: every frame has something to
    reconstruct."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 0.2 + 0.5 * (xx / width)[..., None] * np.array([1.0, 0.8, 0.6], np.float32)
    rng = np.random.default_rng(0)
    for t in range(n):
        cx, cy = width * (0.2 + 0.6 * t / max(n - 1, 1)), height * 0.4
        sun = 3.0 * np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (0.01 * width * height)))
        img = np.clip(base + sun[..., None] + rng.normal(0, 0.02, (height, width, 1)), 0, 1)
        yield (img * 255 + 0.5).astype(np.uint8)


def timed_run(source_path: Path, out_dir: Path, weights, client=None, reconstructor=None):
    from napari_hdrcnn import frames
    from napari_hdrcnn.options import ReconstructOptions
    from napari_hdrcnn.video_io import open_frames

    shutil.rmtree(out_dir, ignore_errors=True)
    start = time.perf_counter()
    report = frames.run_sequence(
        open_frames(source_path),
        out_dir,
        weights=weights,
        options=ReconstructOptions(device="cpu"),
        client=client,
        reconstructor=reconstructor,
    )
    seconds = time.perf_counter() - start
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} frame(s) failed: {report.failed[0]}")
    return seconds, report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="512x384", help="WxH")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--workers", default="1,2", help="cluster sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=2, help="runs per case; the fastest counts")
    parser.add_argument(
        "--no-split-threads",
        action="store_true",
        help="skip the cases whose workers share the cores (TensorFlow threads "
        "= cores / workers) instead of each using all of them",
    )
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from napari_hdrcnn import io
    from napari_hdrcnn.dask_runner import open_client, register_model
    from napari_hdrcnn.options import ReconstructOptions
    from napari_hdrcnn.reconstruct import Reconstructor
    from napari_hdrcnn.video_io import write_test_video
    from napari_hdrcnn.weights import load_weights

    weights = load_weights(args.weights)
    print(
        f"cpu cores: {os.cpu_count()}; weights {Path(weights.source).name} (width "
        f"{weights.width_factor:g}); {args.frames} frames of {width}x{height}"
    )
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        tmp = Path(tmp)
        video = write_test_video(
            tmp / "clip.mkv", synthetic_frames(args.frames, width, height), fps=24
        )
        rows = []
        start = time.perf_counter()
        reconstructor = Reconstructor(weights, device="cpu")
        reconstructor.run(np.zeros((64, 64, 3), np.uint8))  # build and trace
        setup = time.perf_counter() - start
        plain = [
            timed_run(video, tmp / "plain", weights, reconstructor=reconstructor)
            for _ in range(args.repeats)
        ]
        report = plain[0][1]
        s = report.stability
        print(
            f"temporal stability (plain): output {s.output_change:.4f}, input "
            f"{s.comparison_change:.4f} stops/frame, ratio {s.ratio:.3f}"
        )

        cases = [(int(v), None) for v in args.workers.split(",")]
        cores = os.cpu_count() or 1
        if not args.no_split_threads:
            cases += [(n, max(1, cores // n)) for n, _ in cases if cores // n < cores]
        for n, tf_threads in cases:
            start = time.perf_counter()
            with open_client(workers=n, tf_threads=tf_threads) as client:
                # every worker loads the model now
                register_model(client, weights, ReconstructOptions(device="cpu"))
                cluster_setup = time.perf_counter() - start
                runs = [
                    timed_run(video, tmp / f"dask{n}", weights, client=client)
                    for _ in range(args.repeats)
                ]
            name = f"{n} local worker(s)" + (f", {tf_threads} TF thr" if tf_threads else "")
            rows.append((name, cluster_setup, min(r[0] for r in runs)))
            same = all(
                np.array_equal(io.read_image(p), io.read_image(tmp / "plain" / p.name))
                for p in sorted((tmp / f"dask{n}").glob("*.exr"))
            )
            print(
                f"{name}: EXRs identical to the plain loop's: {same}; temporal stability "
                f"the same: {runs[0][1].stability == report.stability}"
            )
        # the machine's load drifts (other jobs): the plain loop again, after the clusters
        plain += [
            timed_run(video, tmp / "plain", weights, reconstructor=reconstructor)
            for _ in range(args.repeats)
        ]
        rows.insert(0, ("plain loop", setup, min(r[0] for r in plain)))
        print("plain loop runs (s): " + ", ".join(f"{r[0]:.2f}" for r in plain))

    print(f"{'case':>28} {'start s':>8} {'seconds':>8} {'frames/s':>9} {'s/frame':>8}")
    for name, setup, seconds in rows:
        print(
            f"{name:>28} {setup:>8.1f} {seconds:>8.2f} {args.frames / seconds:>9.2f} "
            f"{seconds / args.frames:>8.3f}"
        )
    one = next((r for r in rows if r[0] == "1 local worker(s)"), None)
    if one is not None:
        print(
            f"Dask per-frame overhead (1 worker vs plain loop): "
            f"{(one[2] - rows[0][2]) / args.frames * 1000:+.0f} ms/frame"
        )


if __name__ == "__main__":  # worker processes are spawned: they import this file, not run it
    main()
