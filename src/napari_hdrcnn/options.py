"""The options of a reconstruction: one frozen dataclass owns their names, defaults, checks and
help text.

The Python API (`Reconstructor`, `reconstruct`, `reconstruct_stack`), the frame runner, the Dask
workers, the napari widget's worker process and the CLI all take a `ReconstructOptions`; the
CLI's arguments are generated from its fields (`add_arguments`, `from_args`). An options object
is checked when it is made, so a bad value is refused before any frame is read. This module does
not import TensorFlow: the CLI imports it to build its parser.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
from dataclasses import dataclass, field

from .weights import BLENDS, LINEARIZATIONS

SIZINGS = ("native", "reference")
DEVICES = ("auto", "cpu", "gpu")
ENGINES = ("auto", "tensorflow", "openvino")  # what each is: napari_hdrcnn.engines
DEFAULT_MEMORY_BUDGET_MB = 4096
DEFAULT_OVERLAP = 64
MULTIPLE = 32  # the network halves the image five times
MIN_TILE = 2 * MULTIPLE
# Set by the Reconstructor when it is built (TensorFlow picks its devices when it starts).
BUILD_FIELDS = ("device", "engine")


class OptionError(ValueError):
    """A reconstruction option with a value that cannot be used.

    option: the field name (`gamma`); flag: its command-line name (`--gamma`).
    str(err) names the field; `cli_message` says the same with the flag.
    """

    def __init__(self, option: str, problem: str):
        self.option = option
        self.flag = cli_flag(option)
        self.problem = problem  # with {name} where the option's name goes
        super().__init__(problem.format(name=option))

    @property
    def cli_message(self) -> str:
        return self.problem.format(name=self.flag)


def _option(default, help: str, *, flag: str | None = "", type=None, choices=None, metavar=None):
    """A field with what the CLI needs; flag "" means --name-with-dashes, None means no flag."""
    meta = {"help": help, "flag": flag, "type": type, "choices": choices, "metavar": metavar}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ReconstructOptions:
    """How to reconstruct a frame (see each field's help, `help_text(name)`)."""

    gamma: float = _option(
        1.0,
        "the network sees x^(1/gamma), its output is raised to gamma (1.1-1.3 boosts "
        "highlights; 1 changes nothing)",
        type=float,
    )
    scaling: float = _option(
        1.0,
        "> 1 replaces x by min(1, scaling * x) (pushes near-white JPEG noise into clipping)",
        type=float,
    )
    linearize: str | None = _option(
        None,
        "curve for the pixels the network does not replace: square (the authors'), gamma2.2 "
        "or srgb (default: the weight file's)",
        choices=LINEARIZATIONS,
    )
    blend: str | None = _option(
        None,
        "max: a pixel near white is replaced in all channels (the authors'); per-channel: "
        "only its channels near white, the others stay as measured; consistent: per channel, "
        "and the network's value is held within a code of every channel that did not clip "
        "(default: the weight file's)",
        choices=BLENDS,
    )
    sizing: str = _option(
        "native",
        "native: any size, reflect-padded, no resampling; reference: centre crop and resize "
        "to width x height (rounded to multiples of 32), as the authors' predictor",
        flag=None,  # the CLI chooses reference sizing by giving --width and --height
        choices=SIZINGS,
    )
    width: int | None = _option(
        None, "reference sizing: output width (rounded to a multiple of 32)", type=int
    )
    height: int | None = _option(
        None, "reference sizing: output height (rounded to a multiple of 32)", type=int
    )
    tile: int | None = _option(
        None,
        f"tile side in pixels (a multiple of {MULTIPLE}, at least {MIN_TILE}); default: the "
        "largest that fits the memory budget",
        type=int,
    )
    overlap: int = _option(DEFAULT_OVERLAP, "tile overlap in pixels", type=int)
    memory_budget_mb: float = _option(
        DEFAULT_MEMORY_BUDGET_MB,
        "MiB of working memory per tile, used to choose the tile size",
        flag="--memory-budget",
        type=float,
        metavar="MIB",
    )
    device: str = _option("auto", "where the network runs", choices=DEVICES)
    engine: str = _option(
        "auto",
        "what runs the network: openvino (the CPU engine), tensorflow (the GPU engine), or auto: "
        "OpenVINO on the CPU, TensorFlow when a GPU is asked for or would be used",
        choices=ENGINES,
    )

    def __post_init__(self) -> None:
        _positive_number(self, "gamma")
        _positive_number(self, "scaling")
        _choice(self, "linearize", LINEARIZATIONS, "linearisation", optional=True)
        _choice(self, "blend", BLENDS, "blend", optional=True)
        _choice(self, "sizing", SIZINGS, "sizing")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise OptionError(name, f"{{name}} must be a positive integer, got {value!r}")
        if self.sizing == "reference" and (self.width is None or self.height is None):
            missing = "height" if self.width is not None else "width"
            raise OptionError(missing, "reference sizing needs width and height: give {name}")
        if self.tile is not None and (
            not _is_int(self.tile) or self.tile % MULTIPLE or self.tile < MIN_TILE
        ):
            raise OptionError(
                "tile",
                f"{{name}} must be a multiple of {MULTIPLE} and at least {MIN_TILE}, got "
                f"{self.tile!r}",
            )
        if not _is_int(self.overlap) or self.overlap < 0:
            raise OptionError("overlap", f"{{name}} must be an integer >= 0, got {self.overlap!r}")
        _positive_number(self, "memory_budget_mb")
        _choice(self, "device", DEVICES, "device")
        _choice(self, "engine", ENGINES, "engine")
        if self.engine == "openvino" and self.device == "gpu":
            raise OptionError(
                "engine",
                "{name} openvino runs on the CPU; use device cpu or auto, or engine "
                "tensorflow for the GPU",
            )

    def replace(self, **changes) -> ReconstructOptions:
        """A copy with some fields changed (checked again); unknown names raise TypeError."""
        return dataclasses.replace(self, **changes) if changes else self

    @classmethod
    def of(cls, options: ReconstructOptions | None = None, **fields) -> ReconstructOptions:
        """`options` (or the defaults) with `fields` changed: what the functions that take an
        options object or its fields as keywords do with them."""
        if options is not None and not isinstance(options, cls):
            raise TypeError(
                f"options must be a ReconstructOptions, got {type(options).__name__}; give "
                "single options (device=..., gamma=...) as keywords"
            )
        return (options or cls()).replace(**fields)

    def build_fields(self) -> dict:
        """The fields a Reconstructor is built with (device, engine): not per frame."""
        return {name: getattr(self, name) for name in BUILD_FIELDS}


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _positive_number(options: ReconstructOptions, name: str) -> None:
    value = getattr(options, name)
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise OptionError(name, f"{{name}} must be positive, got {value!r}")


def _choice(options, name: str, choices, what: str, optional: bool = False) -> None:
    value = getattr(options, name)
    if (value is None and optional) or value in choices:
        return
    raise OptionError(name, f"unknown {what} {value!r} for {{name}}; one of {', '.join(choices)}")


FIELDS = {f.name: f for f in dataclasses.fields(ReconstructOptions)}
DEFAULTS = ReconstructOptions()


def help_text(name: str) -> str:
    return FIELDS[name].metadata["help"]


def cli_flag(name: str) -> str | None:
    """The command-line name of a field (None: the CLI has no flag for it)."""
    flag = FIELDS[name].metadata["flag"]
    return "--" + name.replace("_", "-") if flag == "" else flag


def add_arguments(parser, names) -> None:
    """Add the fields `names` to an argparse parser (or group), with their defaults, types,
    choices and help; `from_args` reads them back."""
    for name in names:
        meta = FIELDS[name].metadata
        flag = cli_flag(name)
        if flag is None:
            raise ValueError(f"option {name} has no command-line flag")
        kwargs = {"dest": name, "default": getattr(DEFAULTS, name), "help": meta["help"]}
        for key in ("type", "choices", "metavar"):
            if meta[key] is not None:
                kwargs[key] = meta[key]
        parser.add_argument(flag, **kwargs)


def from_args(args: argparse.Namespace) -> ReconstructOptions:
    """The options of a parsed command line: the fields its parser has, the defaults for the
    others; --width or --height choose reference sizing. Raises OptionError."""
    given = {name: getattr(args, name) for name in FIELDS if hasattr(args, name)}
    if given.get("width") is not None or given.get("height") is not None:
        given["sizing"] = "reference"
    return ReconstructOptions(**given)
