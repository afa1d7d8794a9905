"""The network as an ONNX Runtime session, built with the `onnx` helper API from numpy arrays.

Only for the engine comparison in bench_predict.py (the package ships OpenVINO, which measured
faster here): the same `engines.graph` layers and order as the OpenVINO engine, so the two
differ only in the runtime. Needs `pip install onnx onnxruntime`.
"""

from __future__ import annotations

import itertools

import numpy as np

from napari_hdrcnn.architecture import LOG_EPS
from napari_hdrcnn.engines.graph import inference_layers, trace


class _Ops:
    """engines.graph.GraphOps as ONNX nodes (NCHW); names are generated."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers = [], []
        self._ids = itertools.count()

    def _name(self, kind: str) -> str:
        return f"{kind}_{next(self._ids)}"

    def _const(self, a) -> str:
        name = self._name("c")
        self.initializers.append(self.numpy_helper.from_array(np.asarray(a, np.float32), name))
        return name

    def _node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self._name(op.lower())
        self.nodes.append(self.helper.make_node(op, inputs, [out], **attrs))
        return out

    def _channels(self, v) -> str:
        return self._const(np.asarray(v, np.float32).reshape(1, -1, 1, 1))

    def scale_shift(self, x, scale, shift):
        return self._node(
            "Add", [self._node("Mul", [x, self._const(scale)]), self._channels(shift)]
        )

    def log_square(self, x, scale):
        s = self._node("Mul", [x, self._const(scale)]) if scale != 1.0 else x
        return self._node(
            "Log", [self._node("Add", [self._node("Mul", [s, s]), self._const(LOG_EPS)])]
        )

    def conv(self, x, kernel, bias):
        pad = kernel.shape[-1] // 2
        return self._node(
            "Conv", [x, self._const(kernel), self._const(bias)], pads=[pad] * 4, strides=[1, 1]
        )

    def deconv(self, x, kernel, bias):
        return self._node(
            "ConvTranspose",
            [x, self._const(kernel), self._const(bias)],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        )

    def relu(self, x):
        return self._node("Relu", [x])

    def max_pool(self, x):
        return self._node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])

    def concat(self, a, b):
        return self._node("Concat", [a, b], axis=1)


def build_model(weights):
    """The ONNX model: input x (1, H, W, 3) float32 NHWC, output y_log NHWC."""
    from onnx import TensorProto, helper

    ops = _Ops()
    nchw = ops._node("Transpose", ["x"], perm=[0, 3, 1, 2])
    y = trace(ops, nchw, inference_layers(weights))
    ops.nodes.append(helper.make_node("Transpose", [y], ["y_log"], perm=[0, 2, 3, 1]))
    graph = helper.make_graph(
        ops.nodes,
        "hdrcnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "H", "W", 3])],
        [helper.make_tensor_value_info("y_log", TensorProto.FLOAT, [1, "H", "W", 3])],
        ops.initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class ONNXRuntimeNetwork:
    engine = "onnxruntime"

    def __init__(self, weights):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            build_model(weights).SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    def predict_log(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"x": np.ascontiguousarray(x[None], np.float32)})[0][0]
