"""The network as an OpenVINO model, built with OpenVINO's own graph API from numpy arrays.

No TensorFlow and no model conversion: `engines.graph` gives the layers (batch norm folded) and
the order; this module says how each operation is an OpenVINO node. Choices, each measured with
benchmarks/bench_predict.py and an interleaved A/B on the project's 2-core CPU:
- one compiled model per input size (static shapes, a few kept): OpenVINO fuses the elementwise
  steps and plans its memory only for a static shape, which made the default model's frame about
  a quarter faster than one dynamic model; a tiled run uses one size for all its tiles, a video
  one size for all its frames, and a compile costs about 0.1-0.3 s;
- the input stays channels-last (NHWC, what numpy holds and what OpenVINO's convolutions use
  inside): the ops on the image itself run before its transpose, so OpenVINO removes the
  transpose and its reorders instead of converting the image twice;
- a convolution of a concatenation (the decoder's fusions) is two convolutions summed: OpenVINO's
  concatenation along channels is a slow reference kernel here, and the sum fuses into the
  second convolution; the last layer's (with the image's log) stays a concatenation, since
  split it left OpenVINO a transpose and a reorder of the output (width 0.125: 11 % faster
  than no split, width 1.0: 3 %; its image-log half as a MatMul on the channels-last log
  instead: 1.06x the default model's network, a Transpose and two reorders of the output);
- the skip connections' log((x/255)^2 + 1/255) as four square roots and a series (`_Ops._log`):
  OpenVINO 2026.4's Log is a scalar reference kernel (about 20 % of the default model's frame in
  its performance counters), the roots and the series fuse with the square into one vectorised
  kernel; y_log moved by at most 4e-6 (3.8e-6 from TensorFlow's, 2.9e-6 before), the default
  model's network 0.88x the time (interleaved A/B, medians of 9 rounds, sgemm 153 GFLOP/s);
- threads not pinned to cores: on a CPU that other processes share, a thread pinned to a busy
  core held every layer's other thread at its barrier (default model at load average 7-8:
  median 0.27 s unpinned against 1.00 s pinned; about the same on an idle machine);
- the input frame read in place (`share_inputs`), not copied into the request's tensor first:
  0.97x the default model's network (about the noise); `predict_log` copies the output out
  under the lock (a numpy array set as the request's output tensor: no faster), while
  Reconstructor.run blends on the output tensor itself under the lock (`with_log`), which saved
  1.5 ms of the default model's 1024x768 run (1.127x -> 1.107x the bare network);
- OpenVINO's defaults otherwise: CPU_DENORMALS_OPTIMIZATION (0.99x) and INFERENCE_NUM_THREADS
  1 or 2 (1.02x / 1.03x) were within the noise (interleaved, sgemm 157 GFLOP/s, load 2.2);
- float32 inference (the precision hint is set: on CPUs with bf16 units OpenVINO would otherwise
  choose bf16, which moves y_log by about 0.1).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple, TypeVar

import numpy as np

from ..architecture import LOG_EPS
from ..weights import Weights
from .graph import inference_layers, trace

CONFIG = {
    "INFERENCE_PRECISION_HINT": "f32",
    "PERFORMANCE_HINT": "LATENCY",
    "ENABLE_CPU_PINNING": False,
}
# log() as square roots and a series (_Ops._log): 4 roots and terms to t^11 keep it within
# 3e-6 of numpy's float64 log for v in [1/255, 1e5] (argument below 0.36 after the roots)
LOG_SQRTS, LOG_TERMS = 4, 6
T = TypeVar("T")
COMPILED_SIZES = 2  # compiled models kept (each holds its own working memory)
_TO_NCHW = (0, 3, 1, 2)


class _Ops:
    """engines.graph.GraphOps for OpenVINO nodes (NCHW). `image` is the NHWC parameter: the
    ops `trace` applies to the image itself run channels-last, then transposed."""

    def __init__(self, ops, image):
        self.o = ops
        self.image = image
        self.image_log = None

    def _const(self, a):
        return self.o.constant(np.asarray(a, np.float32))

    def _channels(self, v, axis=1):
        shape = [1, 1, 1, 1]
        shape[axis] = -1
        return self._const(np.asarray(v, np.float32).reshape(shape))

    def _nchw(self, x):
        return self.o.transpose(x, self.o.constant(np.array(_TO_NCHW, np.int64)))

    def scale_shift(self, x, scale, shift):
        axis = 3 if x is self.image else 1
        y = self.o.add(self.o.multiply(x, self._const(scale)), self._channels(shift, axis))
        return self._nchw(y) if x is self.image else y

    def _log(self, v):
        """log(v), v > 0, in ops that OpenVINO's CPU plugin compiles into one vectorised kernel
        (its Log is a scalar reference kernel): u = v^(1/16) by square roots, then
        log(v) = 16 log(u) = 32 atanh(t), t = (u - 1) / (u + 1), by its series to t^11."""
        u = v
        for _ in range(LOG_SQRTS):
            u = self.o.sqrt(u)
        one = self._const(1.0)
        t = self.o.divide(self.o.subtract(u, one), self.o.add(u, one))
        t2 = self.o.multiply(t, t)
        series = self._const(1.0 / (2 * LOG_TERMS - 1))  # Horner in t^2
        for n in range(LOG_TERMS - 2, -1, -1):
            series = self.o.add(self.o.multiply(series, t2), self._const(1.0 / (2 * n + 1)))
        return self.o.multiply(self.o.multiply(series, t), self._const(2.0 * 2**LOG_SQRTS))

    def log_square(self, x, scale):
        s = self.o.multiply(x, self._const(scale)) if scale != 1.0 else x
        y = self._log(self.o.add(self.o.multiply(s, s), self._const(LOG_EPS)))
        if x is not self.image:
            return y
        self.image_log = self._nchw(y)
        return self.image_log

    def _conv(self, x, kernel):
        pad = kernel.shape[-1] // 2
        return self.o.convolution(x, self._const(kernel), [1, 1], [pad, pad], [pad, pad], [1, 1])

    def conv(self, x, kernel, bias):
        if isinstance(x, _Concat):  # conv(concat(a, b)) = conv(a, K[:, :a]) + conv(b, K[:, a:])
            split = x.a.get_output_partial_shape(0)[1].get_length()
            y = self.o.add(self._conv(x.a, kernel[:, :split]), self._channels(bias))
            return self.o.add(y, self._conv(x.b, kernel[:, split:]))
        return self.o.add(self._conv(x, kernel), self._channels(bias))

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
        if b is self.image_log:  # the last layer's: split, it left a transpose of the output
            return self.o.concat([a, b], 1)
        return _Concat(a, b)  # `trace` only convolves a concatenation


class _Concat(NamedTuple):
    a: object
    b: object


def build_model(weights: Weights, height: int = -1, width: int = -1):
    """The OpenVINO model: input (1, H, W, 3) float32 NHWC in [0, 1], output y_log NHWC; H and
    W fixed when given (-1: any)."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, height, width, 3], np.float32, name="x")
    y = trace(_Ops(ops, x), x, inference_layers(weights))
    nhwc = ops.transpose(y, ops.constant(np.array([0, 2, 3, 1], np.int64)))
    return ov.Model([nhwc], [x], "hdrcnn")


class OpenVINONetwork:
    """Compiled OpenVINO models of the weights, one per input size (the last `COMPILED_SIZES`
    kept); `predict_log` is thread-safe."""

    engine = "openvino"

    def __init__(self, weights: Weights):
        import openvino as ov

        self.weights = weights
        self.core = ov.Core()
        # Loads the CPU plugin now, so that a CPU it does not support raises RuntimeError here
        # (engines.build_network falls back to TensorFlow) rather than at the first frame.
        self.core.get_property("CPU", "FULL_DEVICE_NAME")
        self._lock = threading.Lock()
        self._requests: OrderedDict[tuple[int, int], object] = OrderedDict()

    def _request(self, height: int, width: int):
        key = (height, width)
        request = self._requests.pop(key, None)
        if request is None:
            while len(self._requests) >= COMPILED_SIZES:  # free the oldest's memory first
                self._requests.popitem(last=False)
            model = build_model(self.weights, height, width)
            request = self.core.compile_model(model, "CPU", CONFIG).create_infer_request()
        self._requests[key] = request
        return request

    def predict_log(self, x: np.ndarray) -> np.ndarray:
        """y_log (H, W, 3) for one (H, W, 3) image with H, W multiples of 32."""
        return self.with_log(x, np.copy)

    def with_log(self, x: np.ndarray, use: Callable[[np.ndarray], T]) -> T:
        """use(y_log) for one (H, W, 3) image with H, W multiples of 32, y_log the request's own
        output tensor, valid only during the call (made under the lock): no copy of it."""
        batch = np.ascontiguousarray(x[None], np.float32)
        with self._lock:
            request = self._request(*x.shape[:2])
            request.infer({0: batch}, share_inputs=True)  # read in place, not copied first
            return use(request.get_output_tensor(0).data[0])
