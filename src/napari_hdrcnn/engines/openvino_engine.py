"""The network as an OpenVINO model, built with OpenVINO's own graph API from numpy arrays.

No TensorFlow and no model conversion: `engines.graph` gives the layers (batch norm folded) and
the order; this module says how each operation is an OpenVINO node. The model takes NHWC input
of any height and width (multiples of 32) and is compiled once: a new size costs no recompile.
Inference runs in float32 (the precision hint is set: on CPUs with bf16 units OpenVINO would
otherwise choose bf16).
"""

from __future__ import annotations

import threading

import numpy as np

from ..architecture import LOG_EPS
from ..weights import Weights
from .graph import inference_layers, trace

CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}


class _Ops:
    """engines.graph.GraphOps for OpenVINO nodes (NCHW)."""

    def __init__(self, ops):
        self.o = ops

    def _const(self, a):
        return self.o.constant(np.asarray(a, np.float32))

    def _channels(self, v):
        return self._const(np.asarray(v, np.float32).reshape(1, -1, 1, 1))

    def scale_shift(self, x, scale, shift):
        return self.o.add(self.o.multiply(x, self._const(scale)), self._channels(shift))

    def log_square(self, x, scale):
        s = self.o.multiply(x, self._const(scale)) if scale != 1.0 else x
        return self.o.log(self.o.add(self.o.multiply(s, s), self._const(LOG_EPS)))

    def conv(self, x, kernel, bias):
        pad = kernel.shape[-1] // 2
        y = self.o.convolution(x, self._const(kernel), [1, 1], [pad, pad], [pad, pad], [1, 1])
        return self.o.add(y, self._channels(bias))

    def deconv(self, x, kernel, bias):
        # TensorFlow's 'SAME' transposed convolution of a 4x4 kernel at stride 2: pad 1 a side
        y = self.o.convolution_backprop_data(
            x, self._const(kernel), [2, 2], pads_begin=[1, 1], pads_end=[1, 1], dilations=[1, 1]
        )
        return self.o.add(y, self._channels(bias))

    def relu(self, x):
        return self.o.relu(x)

    def max_pool(self, x):
        return self.o.max_pool(x, [2, 2], [1, 1], [0, 0], [0, 0], [2, 2]).output(0)

    def concat(self, a, b):
        return self.o.concat([a, b], 1)


def build_model(weights: Weights):
    """The OpenVINO model: input (1, H, W, 3) float32 NHWC in [0, 1], output y_log NHWC."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, -1, -1, 3], np.float32, name="x")
    nchw = ops.transpose(x, ops.constant(np.array([0, 3, 1, 2], np.int64)))
    y = trace(_Ops(ops), nchw, inference_layers(weights))
    nhwc = ops.transpose(y, ops.constant(np.array([0, 2, 3, 1], np.int64)))
    return ov.Model([nhwc], [x], "hdrcnn")


class OpenVINONetwork:
    """A compiled OpenVINO model of the weights; `predict_log` is thread-safe."""

    engine = "openvino"

    def __init__(self, weights: Weights):
        import openvino as ov

        self.compiled = ov.Core().compile_model(build_model(weights), "CPU", CONFIG)
        self._lock = threading.Lock()
        self._request = self.compiled.create_infer_request()

    def predict_log(self, x: np.ndarray) -> np.ndarray:
        """y_log (H, W, 3) for one (H, W, 3) image with H, W multiples of 32."""
        batch = np.ascontiguousarray(x[None], np.float32)
        with self._lock:
            self._request.infer({0: batch})
            return self._request.get_output_tensor(0).data[0].copy()
