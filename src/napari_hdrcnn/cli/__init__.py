"""`hdrcnn`: the command line. Each subcommand lives in its own module with two functions,
`add_parser(subparsers)` and `run(args) -> int`; nothing heavy is imported until a subcommand
runs, so `hdrcnn --help` is instant. The exit status follows one rule in every subcommand
(`common`: 1 when the work fails, 2 when the command line cannot be used)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .common import INTERRUPTED, OK, USAGE

SUBCOMMANDS = {
    "predict": "reconstruct HDR images from LDR photos",
    "weights": "list, install or download weight files",
    "train": "train HDR-CNN weights on HDR scenes",
    "evaluate": "score weight files by the SI-HDR protocol",
}


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="hdrcnn",
        description="HDR-CNN: reconstruct high-dynamic-range images from single 8-bit photos.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            continue  # subcommand not built yet
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter (CPU features, absl) is noise on a command line;
    # a user who wants it sets TF_CPP_MIN_LOG_LEVEL=0.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return USAGE
    try:
        return int(args.run(args) or OK)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
