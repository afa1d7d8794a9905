"""What every subcommand shares: its exit status and how it reports a refusal or a failure, and
argparse value types that check a number's range while the command line is parsed.

The rule (README, "Exit status"), the same in every subcommand:

- 0 (`OK`): the command did what it was asked;
- 1 (`FAILURE`): the work failed: a file that cannot be read or written (named on the command
  line or found in a folder), a weight file that is not valid, a frame that failed (the others
  are still written), training that stopped on an error;
- 2 (`USAGE`): the command line cannot be used, found before any work (nothing read, no model
  built, nothing written): an unknown option, a value out of range, options that do not go
  together, a device this machine does not have. argparse's own errors exit 2 too;
- 130 (`INTERRUPTED`): stopped by Ctrl-C.
"""

from __future__ import annotations

import argparse
import math
import sys

OK = 0
FAILURE = 1
USAGE = 2
INTERRUPTED = 130


def refuse(command: str, message: str) -> int:
    """Report a command line that cannot be used (`message` names the option); exit status 2."""
    print(f"hdrcnn {command}: {message}", file=sys.stderr)
    return USAGE


def fail(command: str, message: str) -> int:
    """Report work that failed; exit status 1."""
    print(f"hdrcnn {command}: {message}", file=sys.stderr)
    return FAILURE


def number(
    kind: type = float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    multiple: int | None = None,
):
    """An argparse `type` that reads a `kind` (int or float) and refuses a value outside
    [low, high] (an open end with low_open / high_open) or not a multiple of `multiple`, so that
    argparse names the option and exits 2."""
    if low is not None and high is not None:
        ends = ("(" if low_open else "[", ")" if high_open else "]")
        want = f"in {ends[0]}{low:g}, {high:g}{ends[1]}"
    elif low is not None:
        want = f"{'>' if low_open else '>='} {low:g}"
    elif high is not None:
        want = f"{'<' if high_open else '<='} {high:g}"
    else:
        want = "a number"
    if multiple is not None:
        want = f"a multiple of {multiple} and {want}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not {'an integer' if kind is int else 'a number'}: {text!r}"
            ) from None
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if ok and multiple is not None:
            ok = value % multiple == 0
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {want}, got {text}")
        return value

    return parse
