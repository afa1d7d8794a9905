"""The inference network as layers of numpy arrays, for engines that build their own graph.

`inference_layers` turns a weight file's 80 tensors into the layers an inference engine runs:
channels-first kernels (OIHW for convolutions, IOHW for transposed ones), batch norm folded into
the convolution before it, the RGB->BGR swap of the VGG input folded into conv1_1. `trace`
walks the network once in terms of a small set of operations (`GraphOps`), so each engine only
says how to make a convolution, a pool, a concatenation; the order of the layers is written
here and in model.py (the TensorFlow reference) only. No engine is imported here.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..architecture import (
    BN_EPSILON,
    DECODER,
    ENCODER,
    FUSIONS,
    LOG_EPS,
    VGG_MEAN_BGR,
    tensor_specs,
)
from ..weights import Weights

Layers = dict[str, tuple[np.ndarray, np.ndarray]]  # layer name -> (kernel, bias), float32


def _folded_bn(by_name: dict, name: str, kernel: np.ndarray, bias: np.ndarray, out_axis: int):
    """conv then batch norm == one conv: kernel * s, (bias - mean) * s + beta per channel."""
    bn = {p: by_name[f"{name}/bn/{p}"].astype(np.float64) for p in ("beta", "gamma")}
    mean = by_name[f"{name}/bn/moving_mean"].astype(np.float64)
    var = by_name[f"{name}/bn/moving_variance"].astype(np.float64)
    s = bn["gamma"] / np.sqrt(var + BN_EPSILON)
    shape = [1] * kernel.ndim
    shape[out_axis] = -1
    folded_kernel = kernel.astype(np.float64) * s.reshape(shape)
    folded_bias = (bias.astype(np.float64) - mean) * s + bn["beta"]
    return folded_kernel, folded_bias


def inference_layers(weights: Weights) -> Layers:
    """The layers of `trace`, from the 80 tensors (authors' layout: HWIO kernels, transposed
    kernels HW-out-in)."""
    specs = tensor_specs(weights.width_factor)
    by_name = {spec.name: t for spec, t in zip(specs, weights.tensors)}
    layers: Layers = {}

    def conv(name: str, bn: str | None = None) -> None:
        kernel = by_name[f"{name}/W"].transpose(3, 2, 0, 1)  # HWIO -> OIHW
        bias = by_name[f"{name}/b"]
        if bn:
            kernel, bias = _folded_bn(by_name, bn, kernel, bias, out_axis=0)
        layers[name] = (np.ascontiguousarray(kernel, np.float32), np.asarray(bias, np.float32))

    for block, index, _ in ENCODER:
        conv(f"conv{block}_{index}")
    kernel, bias = layers["conv1_1"]
    layers["conv1_1"] = (np.ascontiguousarray(kernel[:, ::-1]), bias)  # takes RGB, not BGR
    conv("h6/conv", bn="h6")
    fused = dict(FUSIONS)
    for name, _, _ in DECODER:
        if name in fused:
            conv(f"{name}/fuse")
        kernel = by_name[f"{name}/deconv/W"].transpose(3, 2, 0, 1)  # HW-out-in -> IOHW
        kernel, bias = _folded_bn(by_name, name, kernel, by_name[f"{name}/deconv/b"], 1)
        layers[f"{name}/deconv"] = (
            np.ascontiguousarray(kernel, np.float32),
            np.asarray(bias, np.float32),
        )
    conv("h6/fuse")
    conv("h7/conv", bn="h7")
    conv("h7/fuse")
    return layers


class GraphOps(Protocol):
    """What an engine provides to build the network (tensors are NCHW, float32)."""

    def scale_shift(self, x, scale: float, shift: np.ndarray): ...  # x * scale + shift[c]

    def log_square(self, x, scale: float): ...  # log((x * scale)^2 + LOG_EPS)

    def conv(self, x, kernel: np.ndarray, bias: np.ndarray): ...  # stride 1, 'same' padding

    def deconv(self, x, kernel: np.ndarray, bias: np.ndarray): ...  # 4x4, stride 2, pad 1

    def relu(self, x): ...

    def max_pool(self, x): ...  # 2x2, stride 2

    def concat(self, a, b): ...  # along channels


def trace(ops: GraphOps, x, layers: Layers):
    """y_log for x (NCHW RGB in [0, 1]): the network of model.HDRCNN.log_prediction."""
    mean_rgb = -np.asarray(VGG_MEAN_BGR[::-1], np.float32)
    h = ops.scale_shift(x, 255.0, mean_rgb)
    skips = {}
    for block, index, _ in ENCODER:
        h = ops.relu(ops.conv(h, *layers[f"conv{block}_{index}"]))
        if index == (2 if block <= 2 else 3):
            skips[block] = h
            h = ops.max_pool(h)
    h = ops.relu(ops.conv(h, *layers["h6/conv"]))
    fuse_with = dict(FUSIONS)
    for name, _, _ in DECODER:
        if name in fuse_with:
            skip = ops.log_square(skips[fuse_with[name]], 1.0 / 255.0)
            h = ops.conv(ops.concat(h, skip), *layers[f"{name}/fuse"])
        h = ops.relu(ops.deconv(h, *layers[f"{name}/deconv"]))
    h = ops.conv(ops.concat(h, ops.log_square(skips[1], 1.0 / 255.0)), *layers["h6/fuse"])
    h = ops.relu(ops.conv(h, *layers["h7/conv"]))
    return ops.conv(ops.concat(h, ops.log_square(x, 1.0)), *layers["h7/fuse"])


__all__ = ["LOG_EPS", "GraphOps", "Layers", "inference_layers", "trace"]
