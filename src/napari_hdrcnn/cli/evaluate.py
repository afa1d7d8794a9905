"""`hdrcnn evaluate`: score weight files by the SI-HDR protocol (argument parsing and printing;
the protocol lives in napari_hdrcnn.evaluate)."""

from __future__ import annotations

import sys

from .. import options as reconstruct_options

# The reconstruction options this command takes (flags, defaults and help: napari_hdrcnn.options)
OPTIONS = ("linearize", "blend", "device", "engine")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score weight files by the SI-HDR protocol",
        description="Make 8-bit test inputs from reference HDR images with the protocol's "
        "camera (docs/evaluation.md in the project's repository describes the protocol), "
        "reconstruct them with each weight file and the ldr_linear baseline, and write "
        "per_image.csv, summary.csv (mean and 95 % confidence "
        "interval per method and clip level), settings.json, inputs/ and figures/ to --out.",
    )
    p.add_argument(
        "--reference", required=True, help="a reference HDR image (.exr, .hdr) or a folder of them"
    )
    p.add_argument(
        "--params",
        nargs="+",
        default=["default"],
        metavar="P",
        help="weight names (default, hdrcnn, ...) or weight files; default: default",
    )
    p.add_argument(
        "--label",
        nargs="+",
        metavar="L",
        help="method names for the tables, one per --params (default: the weight "
        "name or file stem)",
    )
    p.add_argument(
        "--clip",
        nargs="+",
        type=float,
        default=[95.0],
        metavar="C",
        help="clip levels: C %% of the pixels stay below white (SI-HDR: 95 97); default: 95",
    )
    p.add_argument(
        "--jpeg",
        type=int,
        metavar="Q",
        help="compress the test inputs as JPEG at this quality (e.g. 90)",
    )
    p.add_argument(
        "--ldr",
        metavar="DIR",
        help="take the LDR test inputs from DIR (same stem as the reference) "
        "instead of making them",
    )
    p.add_argument(
        "--max-side",
        type=int,
        metavar="PX",
        help="box-downscale references so the longer side is at most PX",
    )
    reconstruct_options.add_arguments(p, OPTIONS)
    p.add_argument("--no-figures", action="store_true", help="skip the comparison figures")
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.set_defaults(run=run)


def command_line(args) -> list[str]:
    """The command as parsed (recorded in settings.json), with every default spelled out."""
    cmd = ["hdrcnn", "evaluate", "--reference", str(args.reference), "--params", *args.params]
    if args.label:
        cmd += ["--label", *args.label]
    cmd += ["--clip", *(f"{c:g}" for c in args.clip)]
    for flag, value in (
        ("--jpeg", args.jpeg),
        ("--ldr", args.ldr),
        ("--linearize", args.linearize),
        ("--blend", args.blend),
        ("--max-side", args.max_side),
    ):
        if value is not None:
            cmd += [flag, str(value)]
    cmd += [
        "--device",
        args.device,
        "--engine",
        args.engine,
        *(["--no-figures"] if args.no_figures else []),
        "--out",
        str(args.out),
    ]
    return cmd


def run(args) -> int:
    from pathlib import Path

    from .. import evaluate
    from ..io import ImageReadError, ImageWriteError
    from ..reconstruct import DeviceError, configure_device, require_device
    from ..weights import WeightFileError

    try:
        options = reconstruct_options.from_args(args)
    except reconstruct_options.OptionError as err:
        print(f"hdrcnn evaluate: {err.cli_message}", file=sys.stderr)
        return 2
    configure_device(options.device)  # before TensorFlow is imported
    config = evaluate.EvaluationConfig(
        reference=Path(args.reference),
        out=Path(args.out),
        params=list(args.params),
        labels=args.label,
        clips=tuple(args.clip),
        jpeg=args.jpeg,
        ldr_dir=Path(args.ldr) if args.ldr else None,
        max_side=args.max_side,
        options=options,
        figures=not args.no_figures,
        command=command_line(args),
    )
    if args.max_side is not None and args.max_side < 32:
        print("hdrcnn evaluate: --max-side must be at least 32", file=sys.stderr)
        return 2

    try:
        require_device(options.device)
    except DeviceError as err:
        print(f"hdrcnn evaluate: --device {options.device}: {err}", file=sys.stderr)
        return 2

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        result = evaluate.run_evaluation(config, log=log)
    except (
        evaluate.EvaluationError,
        ImageReadError,
        ImageWriteError,
        WeightFileError,
        OSError,
    ) as err:
        print(f"hdrcnn evaluate: {err}", file=sys.stderr)
        return 2
    print(evaluate.format_settings(result))
    print()
    print(evaluate.format_summary(result.summary))
    print(
        f"\nwrote {Path(args.out) / 'summary.csv'}, per_image.csv, settings.json, "
        f"{len(result.figures)} figure(s)"
    )
    return 0
