"""napari-hdrcnn: HDR-CNN single-image HDR reconstruction for napari and the command line.

The public API is numpy in, numpy out; TensorFlow is imported only when a model is built.
"""

__version__ = "0.1.0"

from .frames import reconstruct_stack  # noqa: E402
from .reconstruct import (  # noqa: E402
    Reconstruction,
    ReconstructionCancelled,
    Reconstructor,
    reconstruct,
)
from .weights import WeightFileError, Weights, load_weights  # noqa: E402

__all__ = [
    "Reconstruction",
    "ReconstructionCancelled",
    "Reconstructor",
    "Weights",
    "WeightFileError",
    "load_weights",
    "reconstruct",
    "reconstruct_layers",
    "reconstruct_stack",
]


def __getattr__(name: str):
    # napari's side is imported only when asked for: the CLI and the worker never load Qt
    if name == "reconstruct_layers":
        from ._commands import reconstruct_layers

        return reconstruct_layers
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
