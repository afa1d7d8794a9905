"""`hdrcnn evaluate`: score weight files by the SI-HDR protocol (argument parsing and printing;
the protocol lives in napari_hdrcnn.evaluate)."""

from __future__ import annotations

import sys

from .. import options as reconstruct_options
from .common import OK, fail, number, refuse

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
        type=number(low=0, high=100, low_open=True, high_open=True),
        default=[95.0],
        metavar="C",
        help="clip levels: C %% of the pixels stay below white (SI-HDR: 95 97); default: 95",
    )
    p.add_argument(
        "--jpeg",
        type=number(int, low=1, high=100),
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
        type=number(int, low=32),
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


def check(args) -> str | None:
    """What makes the command line unusable (naming the option), or None: the checks that
    argparse's value types cannot make, before any file is read."""
    from ..evaluate import EvaluationError, method_labels

    if args.ldr is not None and args.max_side is not None:
        return "--max-side cannot be combined with --ldr (given inputs must match the reference)"
    if args.ldr is not None and args.jpeg is not None:
        return (
            "--jpeg applies to the inputs the protocol makes; given LDR inputs (--ldr) are used "
            "as they are"
        )
    try:
        method_labels(list(args.params), args.label)
    except EvaluationError as err:
        return f"--label: {err}"
    return None


def run(args) -> int:
    from pathlib import Path

    from .. import evaluate
    from ..io import ImageReadError, ImageWriteError
    from ..reconstruct import DeviceError, configure_device, require_device
    from ..weights import WeightFileError

    try:
        options = reconstruct_options.from_args(args)
    except reconstruct_options.OptionError as err:
        return refuse("evaluate", err.cli_message)
    problem = check(args)
    if problem is not None:
        return refuse("evaluate", problem)
    configure_device(options.device)  # before TensorFlow is imported
    try:
        require_device(options.device)
    except DeviceError as err:
        return refuse("evaluate", f"--device {options.device}: {err}")
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
        return fail("evaluate", str(err))
    print(evaluate.format_settings(result))
    print()
    print(evaluate.format_summary(result.summary))
    print(
        f"\nwrote {Path(args.out) / 'summary.csv'}, per_image.csv, settings.json, "
        f"{len(result.figures)} figure(s)"
    )
    return OK
