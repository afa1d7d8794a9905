"""Inference engines: which one runs the network, and building it.

- `openvino`: the CPU engine, an OpenVINO model built from the weight file's arrays
  (`openvino_engine`); no TensorFlow import at all.
- `tensorflow`: model.HDRCNN; the GPU engine, and the reference the others are tested against.

`auto` (the default) is OpenVINO unless a GPU is asked for (device 'gpu') or would be used
(device 'auto' on a machine with an NVIDIA GPU and TensorFlow's GPU build): then TensorFlow. When
`auto` picked OpenVINO and it cannot be imported or cannot compile for this CPU, TensorFlow runs
instead and a warning says so, once per process.
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import warnings

from ..options import ReconstructOptions
from ..weights import Weights

CPU_ENGINE = "openvino"
_warned: set[str] = set()


def gpu_in_use(device: str) -> bool:
    """Would TensorFlow run on a GPU for `device`? Answered without importing TensorFlow: a GPU
    is asked for, or device 'auto' with an NVIDIA device visible and TensorFlow's GPU build
    (the 'tensorflow' distribution, not 'tensorflow-cpu') installed."""
    if device != "auto":
        return device == "gpu"
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("-1", ""):
        return False
    if not glob.glob("/dev/nvidia[0-9]*"):
        return False
    try:
        importlib.metadata.distribution("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _fall_back(reason: str) -> str:
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(
            f"engine auto: {reason}; running the network with TensorFlow instead",
            RuntimeWarning,
            stacklevel=3,
        )
    return "tensorflow"


def choose_engine(options: ReconstructOptions) -> str:
    """The engine that runs for these options: 'openvino' or 'tensorflow'."""
    if options.engine != "auto":
        return options.engine
    if gpu_in_use(options.device):
        return "tensorflow"
    try:
        import openvino  # noqa: F401
    except ImportError as err:
        return _fall_back(f"OpenVINO cannot be imported ({err})")
    return CPU_ENGINE


def build_network(weights: Weights, options: ReconstructOptions):
    """A network with `predict_log(x) -> y_log` for one (H, W, 3) image, on the chosen engine;
    its `engine` attribute names it."""
    engine = choose_engine(options)
    if engine == "openvino":
        try:
            import openvino  # noqa: F401

            from .openvino_engine import OpenVINONetwork
        except ImportError as err:  # only an explicit --engine openvino gets here
            raise RuntimeError(
                f"engine openvino: the openvino package cannot be imported ({err}); install it "
                "(pip install openvino) or use engine tensorflow"
            ) from err
        try:
            return OpenVINONetwork(weights)
        except RuntimeError as err:  # OpenVINO does not support this CPU
            if options.engine != "auto":
                raise RuntimeError(f"engine openvino: {err}") from err
            _fall_back(f"OpenVINO cannot run on this CPU ({err})")
    from .tensorflow_engine import TensorFlowNetwork

    return TensorFlowNetwork(weights, options.device)
