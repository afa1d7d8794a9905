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
    "reconstruct_stack",
]
