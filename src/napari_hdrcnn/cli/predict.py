"""`hdrcnn predict`: the authors' predictor's options, plus native sizing, tiles and progress."""

from __future__ import annotations

import argparse
import sys
import time

from ..reconstruct import DEFAULT_MEMORY_BUDGET_MB, DEFAULT_OVERLAP, DEVICES
from ..weights import LINEARIZATIONS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict", help="reconstruct HDR images from LDR photos",
        description="Reconstruct HDR images. For the k-th frame writes {k:06d}_in.png (input "
        "preview), {k:06d}_out.png (output preview, y^0.5 at -3 stops as the reference) and "
        "{k:06d}_out.exr (linear HDR). Without --width/--height the image keeps its own size "
        "(native sizing); with them it is centre-cropped and resized as the authors' predictor.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--params", default="default",
                   help="weights: default, hdrcnn, hdrcnn-compr, hdrcnn-compr-regularized, or "
                   "a file path")
    p.add_argument("--im_dir", "--im-dir", dest="im_dir", required=True,
                   help="an image file or a folder of images")
    p.add_argument("--out_dir", "--out-dir", dest="out_dir", default="out",
                   help="output folder (created if needed)")
    p.add_argument("--width", type=int, help="reference sizing: output width (multiple of 32)")
    p.add_argument("--height", type=int, help="reference sizing: output height (multiple of 32)")
    p.add_argument("--scaling", type=float, default=1.0,
                   help="> 1 replaces x by min(1, scaling * x) (pushes near-white JPEG noise "
                   "into clipping)")
    p.add_argument("--gamma", type=float, default=1.0,
                   help="network sees x^(1/gamma), output raised to gamma (1.1-1.3 boosts "
                   "highlights)")
    p.add_argument("--linearize", choices=LINEARIZATIONS,
                   help="curve for the pixels the network does not replace (default: the "
                   "weight file's)")
    p.add_argument("--tile", type=int,
                   help="tile side in pixels (multiple of 32); default from --memory-budget")
    p.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help="tile overlap in pixels")
    p.add_argument("--memory-budget", type=float, default=DEFAULT_MEMORY_BUDGET_MB,
                   help="MiB of working memory per tile, used to choose the tile size")
    p.add_argument("--exr-dtype", choices=("half", "float32"), default="half",
                   help="pixel type of the EXR output")
    p.add_argument("--compression", default="zip", help="EXR compression")
    p.add_argument("--device", choices=DEVICES, default="auto", help="where TensorFlow runs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    if (args.width is None) != (args.height is None):
        print("hdrcnn predict: give both --width and --height, or neither", file=sys.stderr)
        return 2

    from tqdm import tqdm

    from .. import image_io
    from ..reconstruct import Reconstructor, configure_device
    from ..tonemap import exposure_preview
    from ..weights import WeightFileError

    configure_device(args.device)  # before TensorFlow is imported
    try:
        frames = image_io.list_images(args.im_dir)
        reconstructor = Reconstructor(args.params, device=args.device)
    except (image_io.ImageReadError, WeightFileError, OSError) as err:
        print(f"hdrcnn predict: {err}", file=sys.stderr)
        return 2

    from pathlib import Path

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizing = "reference" if args.width is not None else "native"
    w = reconstructor.weights
    print(f"weights: {w.source} (width factor {w.width_factor:g}, linearise "
          f"{args.linearize or w.linearize}); sizing: {sizing}; {len(frames)} frame(s) -> "
          f"{out_dir}", file=sys.stderr)

    failed: list[tuple[Path, str]] = []
    bar = tqdm(frames, unit="frame", disable=args.no_progress, file=sys.stderr)
    start = time.perf_counter()
    for k, path in enumerate(bar, start=1):
        bar.set_postfix_str(path.name)

        def tile_progress(done, total, _bar=bar):
            if total > 1:
                _bar.set_postfix_str(f"{path.name} tile {done}/{total}")

        try:
            image = image_io.read_image(path)
            if image.dtype.kind == "f" and image_io.is_hdr_file(path):
                raise image_io.ImageReadError(f"{path}: already an HDR image; predict takes "
                                              "8/16-bit photos")
            result = reconstructor.run(
                image, gamma=args.gamma, scaling=args.scaling, linearize=args.linearize,
                sizing=sizing, width=args.width, height=args.height, tile=args.tile,
                overlap=args.overlap, memory_budget_mb=args.memory_budget,
                progress=tile_progress)
            stem = out_dir / f"{k:06d}"
            image_io.write_png(f"{stem}_in.png", exposure_preview(result.ldr, linear=False))
            image_io.write_png(f"{stem}_out.png", exposure_preview(result.hdr[..., :3]))
            image_io.write_exr(f"{stem}_out.exr", result.hdr, dtype=args.exr_dtype,
                               compression=args.compression,
                               header={"hdrcnn_source": path.name,
                                       "hdrcnn_weights": Path(w.source).name})
            tqdm.write(f"{k:06d} <- {path}", file=sys.stderr)
        except Exception as err:  # a bad frame must not stop the batch
            failed.append((path, str(err)))
            tqdm.write(f"hdrcnn predict: FAILED {path}: {err}", file=sys.stderr)
    bar.close()
    seconds = time.perf_counter() - start
    done = len(frames) - len(failed)
    print(f"{done} of {len(frames)} frame(s) reconstructed in {seconds:.1f} s", file=sys.stderr)
    for path, msg in failed:
        print(f"  failed: {path}: {msg}", file=sys.stderr)
    return 1 if failed else 0
