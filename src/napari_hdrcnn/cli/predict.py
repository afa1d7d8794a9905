"""`hdrcnn predict`: the authors' predictor's options, plus native sizing, tiles and progress."""

from __future__ import annotations

import argparse
import sys

from .. import options as reconstruct_options
from ..frames import NAMINGS
from ..weights import WEIGHT_NAMES
from .common import FAILURE, OK, fail, refuse

# The reconstruction options this command takes (their flags, defaults and help come from
# napari_hdrcnn.options); --width/--height choose reference sizing.
OPTIONS = (
    "width",
    "height",
    "scaling",
    "gamma",
    "linearize",
    "blend",
    "tile",
    "overlap",
    "memory_budget_mb",
    "device",
    "engine",
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="reconstruct HDR images from LDR photos or videos",
        description="Reconstruct HDR images. For the k-th frame writes {k:06d}_out.exr (linear "
        "HDR) and, for image inputs (or with --frame-previews), {k:06d}_in.png (input preview) "
        "and {k:06d}_out.png (output preview, y^0.5 at -3 stops as the reference). Without "
        "--width/--height the image keeps its own size (native sizing); with them it is "
        "centre-cropped and resized as the authors' predictor. Frames whose outputs exist "
        "already are skipped (an interrupted run goes on where it stopped) unless --overwrite.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--params",
        default="default",
        help=f"weights: {', '.join(WEIGHT_NAMES)}, or a file path (see `hdrcnn weights list`)",
    )
    p.add_argument(
        "--im_dir",
        "--im-dir",
        dest="im_dir",
        required=True,
        help="an image file, a folder of images, a video file, or an image sequence "
        'as a printf pattern (shots/f_%%04d.png) or a glob ("shots/*.png")',
    )
    p.add_argument(
        "--out_dir",
        "--out-dir",
        dest="out_dir",
        default="out",
        help="output folder (created if needed)",
    )
    reconstruct_options.add_arguments(p, OPTIONS)
    p.add_argument(
        "--exr-dtype",
        choices=("half", "float32"),
        default="half",
        help="pixel type of the EXR output",
    )
    p.add_argument("--compression", default="zip", help="EXR compression")
    p.add_argument(
        "--names",
        choices=NAMINGS,
        default="number",
        help="output file names: number ({k:06d}_out.exr, as the reference release) or input "
        "(photo.jpg -> photo_out.exr, photo_in.png, photo_out.png; a video's frames "
        "{video}_{k:06d}; inputs sharing a stem get distinct names and a warning)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    v = p.add_argument_group("video and sequences")
    v.add_argument(
        "--frame-previews",
        action="store_true",
        help="for a video input, also write the PNG previews of every frame",
    )
    v.add_argument(
        "--preview-video",
        metavar="PATH",
        help="also write a tone-mapped preview video (.mp4, .mov, .mkv, .webm); a "
        "relative path is inside the output folder",
    )
    v.add_argument(
        "--fps",
        type=float,
        help="frame rate of an image sequence (for --preview-video; default 25) or "
        "to override a video's",
    )
    v.add_argument(
        "--overwrite", action="store_true", help="recompute frames whose outputs exist already"
    )
    d = p.add_argument_group("Dask (spread frames over processes or machines)")
    where = d.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="a local cluster of N worker processes (one frame each at a time)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (workers need "
        "napari-hdrcnn installed and the output folder and image files at the "
        "same paths)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    try:
        options = reconstruct_options.from_args(args)
    except reconstruct_options.OptionError as err:
        return refuse("predict", err.cli_message)
    if args.workers is not None and args.workers < 1:
        return refuse("predict", "--workers must be at least 1")

    from pathlib import Path

    from tqdm import tqdm

    from .. import frames, io
    from ..engines import choose_engine
    from ..reconstruct import DeviceError, Reconstructor, configure_device, require_device
    from ..video_io import open_frames
    from ..weights import WeightFileError, load_weights

    configure_device(options.device)  # before TensorFlow is imported
    distributed = args.workers is not None or args.scheduler is not None
    try:
        if args.scheduler is None:  # a remote cluster's workers check their own devices
            require_device(options.device)
    except DeviceError as err:
        return refuse("predict", f"--device {options.device}: {err}")
    try:
        source = open_frames(args.im_dir, fps=args.fps)
        # On a cluster the workers load the model; here the file is only read and checked.
        if distributed:
            reconstructor, weights = None, load_weights(args.params)
        else:
            reconstructor = Reconstructor(args.params, options)
            weights = reconstructor.weights
            reconstructor.network()  # an engine that cannot run is refused before any frame
    except (io.ImageReadError, WeightFileError, OSError, ValueError, RuntimeError) as err:
        return fail("predict", str(err))

    out_dir = Path(args.out_dir)
    count = source.count
    engine = reconstructor.engine if reconstructor is not None else choose_engine(options)
    where = (
        f"{args.workers} local worker(s)"
        if args.workers
        else f"cluster {args.scheduler}"
        if args.scheduler
        else "this process"
    )
    print(
        f"weights: {weights.source} (width factor {weights.width_factor:g}, linearise "
        f"{options.linearize or weights.linearize}, blend {options.blend or weights.blend}); "
        f"sizing: {options.sizing}; engine: {engine}; "
        f"{count if count is not None else 'unknown number of'} frame(s) from "
        f"{source.kind} -> {out_dir}; on {where}",
        file=sys.stderr,
    )
    if source.kind == "video":
        hint = frames.video_weights_hint(weights)
        if hint:
            print(hint, file=sys.stderr)

    bar = tqdm(total=count, unit="frame", disable=args.no_progress, file=sys.stderr)

    def on_outcome(outcome) -> None:
        bar.update(1)
        bar.set_postfix_str(outcome.name)
        if outcome.status == "failed":
            tqdm.write(f"hdrcnn predict: FAILED {outcome.error}", file=sys.stderr)
        elif outcome.status == "done":
            tqdm.write(f"{outcome.number:06d} <- {outcome.name}", file=sys.stderr)

    def tile_progress(name, done, total) -> None:
        if total > 1:
            bar.set_postfix_str(f"{name} tile {done}/{total}")

    # a folder or a single photo is usually unrelated pictures: a frame-to-frame figure would be
    # noise there; videos and explicit sequences (a %d pattern or a glob) get it
    is_sequence = source.kind == "video" or not Path(args.im_dir).exists()
    try:
        report = _run_sequence(
            args,
            source,
            out_dir,
            weights,
            reconstructor,
            options,
            on_outcome,
            tile_progress,
            is_sequence,
        )
    except (io.ImageReadError, io.ImageWriteError, OSError, ValueError) as err:
        return fail("predict", str(err))  # the source itself broke (e.g. a video damaged mid-way)
    finally:
        bar.close()
    _print_report(report, out_dir)
    return FAILURE if report.failed else OK


def _run_sequence(
    args,
    source,
    out_dir,
    weights,
    reconstructor,
    options,
    on_outcome,
    tile_progress,
    measure_stability,
):
    from .. import frames

    common = dict(
        weights=weights,
        options=options,
        previews=True if args.frame_previews else None,
        exr_dtype=args.exr_dtype,
        compression=args.compression,
        overwrite=args.overwrite,
        preview_video=args.preview_video,
        fps=args.fps,
        names=args.names,
        on_outcome=on_outcome,
        on_warning=lambda message: print(f"hdrcnn predict: warning: {message}", file=sys.stderr),
        measure_stability=measure_stability,
    )
    if args.workers is None and args.scheduler is None:
        return frames.run_sequence(
            source, out_dir, reconstructor=reconstructor, tile_progress=tile_progress, **common
        )
    from ..dask_runner import open_client

    with open_client(workers=args.workers, scheduler=args.scheduler) as client:
        return frames.run_sequence(source, out_dir, client=client, **common)


def _print_report(report, out_dir) -> None:
    print(
        f"{report.done} of {report.total} frame(s) reconstructed in {report.seconds:.1f} s"
        + (
            f"; {report.skipped} already in {out_dir} (--overwrite recomputes them)"
            if report.skipped
            else ""
        ),
        file=sys.stderr,
    )
    for _name, message in report.failed:
        print(f"  failed: {message}", file=sys.stderr)
    if report.stability is not None:
        s = report.stability
        print(
            f"temporal stability: outputs change {s.output_change:.4f} stops/frame, inputs "
            f"{s.comparison_change:.4f}; ratio {s.ratio:.3f} (1 = as stable as the input)"
            + (f" ({report.stability_note})" if report.stability_note else ""),
            file=sys.stderr,
        )
    elif report.total >= 2 and report.stability_note:
        print(report.stability_note, file=sys.stderr)
    if report.preview_video is not None:
        print(f"preview video: {report.preview_video}", file=sys.stderr)
    elif report.preview_video_note:
        print(report.preview_video_note, file=sys.stderr)
