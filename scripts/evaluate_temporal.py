"""Temporal stability of the shipped models on synthetic video: slow camera pans across the
validation panoramas, shot by the evaluation protocol's camera (fixed exposure, gamma 2.2,
8 bits, optionally JPEG), reconstructed frame by frame.

    python scripts/evaluate_temporal.py [--jpeg 90] [--out docs/evaluation/temporal.md]

For each method the table gives the temporal-stability ratio against the reference pan
(metrics.temporal_stability: mean |delta log2 Y| between frames, output / reference; 1 is as
steady as the real scene, above 1 flickers) and the mean clipped-region PU21-PSNR per frame.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

from napari_hdrcnn import io, metrics
from napari_hdrcnn.evaluate import camera_exposure, expose_ldr
from napari_hdrcnn.reconstruct import Reconstructor
from napari_hdrcnn.training.camera import is_panorama, perspective_view, pyramid

ROOT = Path(__file__).resolve().parent.parent


def brightest_yaw(panorama: np.ndarray) -> float:
    """Yaw (degrees) of the panorama column with the most light above the horizon band, so the
    pan passes the sun or the lamps, where reconstruction happens."""
    h = panorama.shape[0]
    band = panorama[h // 6 : h // 2].max(axis=-1)  # 60 degrees above the horizon
    column = int(np.argmax(np.percentile(band, 99, axis=0)))
    return (column + 0.5) / panorama.shape[1] * 360.0 - 180.0


def pan_frames(
    panorama: np.ndarray, frames: int, size: int, fov: float, degrees_per_frame: float
) -> list[np.ndarray]:
    levels = pyramid(panorama, size // 2)
    centre = brightest_yaw(panorama)
    start = centre - degrees_per_frame * (frames - 1) / 2
    return [
        perspective_view(levels, size, start + k * degrees_per_frame, 10.0, fov)
        for k in range(frames)
    ]


def capture(views: list[np.ndarray], clip: float, jpeg: int | None) -> list[np.ndarray]:
    """The protocol's camera with ONE exposure for the whole pan (set on the middle frame)."""
    e = camera_exposure(views[len(views) // 2], clip)
    out = []
    for v in views:
        ldr = expose_ldr(v, e)
        out.append(io.jpeg_round_trip(ldr, jpeg)[0] if jpeg else ldr)
    return out


def flicker(outputs: list[np.ndarray], views: list[np.ndarray], ldrs: list[np.ndarray]) -> float:
    """Mean |delta log2 Y_out - delta log2 Y_ref| between consecutive frames over the pixels
    clipped in either frame (stops per frame): change the scene does not explain. The
    temporal-stability ratio mixes the pan's real change into both sides; this isolates it."""

    def log_y(a):
        return np.log2(np.maximum(metrics.luminance(np.asarray(a, np.float32)), 1e-6))

    # each frame's log luminance and mask once, not once per neighbouring pair
    log_out = [log_y(o) for o in outputs]
    log_ref = [log_y(v) for v in views]
    masks = [metrics.clipped_mask(x) for x in ldrs]
    errors = []
    for t in range(1, len(outputs)):
        clipped = masks[t] | masks[t - 1]
        if not clipped.any():
            continue
        d_out = log_out[t] - log_out[t - 1]
        d_ref = log_ref[t] - log_ref[t - 1]
        errors.append(float(np.mean(np.abs(d_out - d_ref)[clipped])))
    return float(np.mean(errors)) if errors else math.nan


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", default=str(ROOT.parent / "shared/data/hdr/val"))
    p.add_argument(
        "--params", nargs="+", default=["default", "default-compr", "default-compr-regularized"]
    )
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--fov", type=float, default=60.0)
    p.add_argument("--step", type=float, default=0.25, help="pan degrees per frame")
    p.add_argument("--clip", type=float, default=95.0)
    p.add_argument("--jpeg", type=int, help="JPEG quality of the frames (default: none)")
    p.add_argument("--out", default=str(ROOT / "docs/evaluation/temporal.md"))
    args = p.parse_args(argv)

    methods = {"ldr_linear": None}
    for name in args.params:
        methods[name] = Reconstructor(name)
    scenes = [
        path
        for path in sorted(Path(args.reference).iterdir())
        if path.suffix.lower() in (".hdr", ".exr")
    ]
    rows = []
    for path in scenes:
        hdr = np.nan_to_num(io.read_image(path)[..., :3].astype(np.float32))
        if not is_panorama(hdr.shape):
            continue  # a pan needs a full panorama
        views = pan_frames(hdr, args.frames, args.size, args.fov, args.step)
        ldrs = capture(views, args.clip, args.jpeg)
        for method, model in methods.items():
            outputs = [
                metrics.ldr_linear(x) if model is None else model.run(x).hdr[..., :3] for x in ldrs
            ]
            stab = metrics.temporal_stability(np.stack(outputs), np.stack(views))
            scores = [
                metrics.score(o, v, x, crf=False).metrics["pu21_psnr_clipped"]
                for o, v, x in zip(outputs, views, ldrs)
            ]
            finite = [s for s in scores if math.isfinite(s)]
            rows.append(
                {
                    "scene": path.stem,
                    "method": method,
                    "ratio": stab.ratio,
                    "output_change": stab.output_change,
                    "reference_change": stab.comparison_change,
                    "flicker_clipped": flicker(outputs, views, ldrs),
                    "clipped_pu21_psnr": float(np.mean(finite)) if finite else math.nan,
                }
            )
            print(
                f"{path.stem:28s} {method:28s} ratio {stab.ratio:.3f}  flicker "
                f"{rows[-1]['flicker_clipped']:.4f}  clipped PU21-PSNR "
                f"{rows[-1]['clipped_pu21_psnr']:.2f}",
                file=sys.stderr,
            )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        f"Synthetic pans ({args.frames} frames of {args.size}x{args.size}, "
        f"{args.step:g} deg/frame, fov {args.fov:g}) across the "
        f"{len({r['scene'] for r in rows})} validation panoramas; clip {args.clip:g}, "
        f"{'JPEG quality ' + str(args.jpeg) if args.jpeg else 'no JPEG'}; "
        "`python scripts/evaluate_temporal.py"
        + (f" --jpeg {args.jpeg}`" if args.jpeg else "`")
        + ".",
        "",
        "| method | temporal ratio vs reference (1 = steady as the scene) | "
        "unexplained change in clipped pixels (stops/frame) | clipped PU21-PSNR per frame |",
        "|---|---|---|---|",
    ]
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        lines.append(
            f"| {method} | {np.mean([r['ratio'] for r in mine]):.3f} | "
            f"{np.nanmean([r['flicker_clipped'] for r in mine]):.4f} | "
            f"{np.nanmean([r['clipped_pu21_psnr'] for r in mine]):.2f} |"
        )
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
