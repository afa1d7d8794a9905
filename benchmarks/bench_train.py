"""Training throughput on this machine: samples per second of the compiled train step, and of
the virtual camera that feeds it.

Prints figures; never pass/fail. The network part times `Trainer.run_step` on a fixed batch
after one warm-up step (tracing excluded); the camera part times `SampleSource.batch` on
synthetic panoramas (or on --data when given).

    python benchmarks/bench_train.py                        # width 0.25 and 1.0, crop 224, batch 8
    python benchmarks/bench_train.py --quick                # width 0.25 only, 3 steps
    python benchmarks/bench_train.py --widths 0.25 --crop 128 --batch-size 8 --steps 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def synthetic_scenes(crop: int):
    from napari_hdrcnn.training.data import scene_from_array
    from test_camera import sunny_scene

    return [
        scene_from_array(sunny_scene(512, 1024, seed), f"synthetic{seed}", crop=crop)
        for seed in range(4)
    ]


def bench_camera(scenes, crop: int, batch_size: int, repeat: int) -> float:
    from napari_hdrcnn.training.camera import CameraSettings
    from napari_hdrcnn.training.data import SampleSource

    source = SampleSource(scenes, CameraSettings(crop=crop), seed=0)
    source.batch(0, batch_size)
    t0 = time.perf_counter()
    for step in range(1, repeat + 1):
        source.batch(step, batch_size)
    return repeat * batch_size / (time.perf_counter() - t0)


def bench_network(
    width: float, crop: int, batch_size: int, steps: int, batch: dict, regularization: str
) -> tuple[float, float]:
    from napari_hdrcnn.model import HDRCNN, training_init
    from napari_hdrcnn.training.config import TrainConfig
    from napari_hdrcnn.training.trainer import Trainer, regularization_inputs

    model = HDRCNN(width)
    training_init(model, 0)
    trainer = Trainer(model, crop=crop, regularization=regularization)
    if regularization != "none":
        cfg = TrainConfig(data="-", out="-", crop=crop, batch_size=batch_size)
        batch = {**batch, **regularization_inputs(cfg, 0, batch_size)}
    t0 = time.perf_counter()
    trainer.run_step(batch)
    trace = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.run_step(batch)
    return steps * batch_size / (time.perf_counter() - t0), trace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=float, nargs="+", default=[0.25, 1.0])
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per width")
    ap.add_argument(
        "--regularization", default="none", choices=("none", "coherence", "sparse-jacobian")
    )
    ap.add_argument("--data", help="time the camera on this folder instead of synthetic scenes")
    ap.add_argument("--quick", action="store_true", help="width 0.25 only")
    args = ap.parse_args()
    widths = [0.25] if args.quick else args.widths

    import tensorflow as tf

    from napari_hdrcnn.training.camera import CameraSettings
    from napari_hdrcnn.training.data import SampleSource, load_scenes

    print(
        f"CPU cores: {os.cpu_count()}, TensorFlow {tf.__version__}, "
        f"GPUs: {len(tf.config.list_physical_devices('GPU'))}"
    )
    print(f"crop {args.crop}, batch {args.batch_size}, regularisation {args.regularization}")
    scenes = load_scenes(args.data, crop=args.crop) if args.data else synthetic_scenes(args.crop)
    rate = bench_camera(scenes, args.crop, args.batch_size, repeat=5)
    print(f"virtual camera: {rate:8.1f} samples/s ({len(scenes)} scenes)")
    batch = SampleSource(scenes, CameraSettings(crop=args.crop), seed=0).batch(0, args.batch_size)
    for width in widths:
        rate, trace = bench_network(
            width, args.crop, args.batch_size, args.steps, batch, args.regularization
        )
        print(
            f"width {width:5.3f}: {rate:8.2f} samples/s, {args.batch_size / rate:7.2f} s/step "
            f"(first step with tracing {trace:.1f} s)"
        )


if __name__ == "__main__":
    main()
