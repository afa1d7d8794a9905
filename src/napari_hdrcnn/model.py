"""The HDR-CNN network in TensorFlow 2.

Written with plain `tf.Variable`s and `tf.nn` ops rather than Keras layers so that the variables
are exactly the authors' 80 tensors, in their order and layout (transposed-conv kernels
`[4, 4, out, in]`, batch norm as beta, gamma, mean, variance): loading a weight file is a list
assignment, and nothing is reordered behind our back.

Only this module and the training package import TensorFlow.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .architecture import (
    BN_EPSILON,
    DECODER,
    ENCODER,
    FUSIONS,
    LOG_EPS,
    VGG_MEAN_BGR,
    blend_alpha,
    initial_tensors,
    tensor_specs,
)

BN_MOMENTUM = 0.99  # moving-average decay while training (TensorLayer / Keras default)


def _skip_to_log(s: tf.Tensor) -> tf.Tensor:
    """The LDR-to-log-HDR domain change applied to every skip tensor."""
    return tf.math.log(tf.square(s / 255.0) + LOG_EPS)


class HDRCNN(tf.Module):
    """HDR-CNN U-Net. Call `log_prediction(x)` for `y_log`, or `__call__(x)` for the blended HDR.

    `x` is float32 RGB in [0, 1], shape (N, H, W, 3) with H, W multiples of 32.
    """

    def __init__(self, width_factor: float = 1.0, name: str | None = None):
        super().__init__(name=name)
        self.width_factor = float(width_factor)
        self.specs = tensor_specs(width_factor)
        self.tensors = [
            tf.Variable(
                tf.zeros(s.shape, tf.float32),
                name=s.name.replace("/", "_"),
                trainable=not s.name.endswith(("moving_mean", "moving_variance")),
            )
            for s in self.specs
        ]
        self._by_name = {s.name: v for s, v in zip(self.specs, self.tensors)}
        # One trace for every image size: H and W are dynamic.
        self._infer = tf.function(
            self._infer_impl,
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
            reduce_retracing=True,
            autograph=False,  # no tensor-dependent Python control flow: tracing is seconds faster
        )

    # -- weights -------------------------------------------------------------------------------
    def set_weights(self, arrays: list[np.ndarray]) -> None:
        if len(arrays) != len(self.tensors):
            raise ValueError(f"expected {len(self.tensors)} tensors, got {len(arrays)}")
        for spec, var, arr in zip(self.specs, self.tensors, arrays):
            if tuple(arr.shape) != spec.shape:
                raise ValueError(
                    f"tensor {spec.index} ({spec.name}): expected shape "
                    f"{spec.shape}, got {tuple(arr.shape)}"
                )
            var.assign(np.asarray(arr, np.float32))

    def get_weights(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.tensors]

    @property
    def trainable(self) -> list[tf.Variable]:
        return [v for v in self.tensors if v.trainable]

    # -- building blocks ------------------------------------------------------------------------
    def _conv(self, name: str, x: tf.Tensor) -> tf.Tensor:
        w, b = self._by_name[f"{name}/W"], self._by_name[f"{name}/b"]
        return tf.nn.bias_add(tf.nn.conv2d(x, w, strides=1, padding="SAME"), b)

    def _batch_norm(self, name: str, x: tf.Tensor, training: bool) -> tf.Tensor:
        beta = self._by_name[f"{name}/bn/beta"]
        gamma = self._by_name[f"{name}/bn/gamma"]
        mean = self._by_name[f"{name}/bn/moving_mean"]
        var = self._by_name[f"{name}/bn/moving_variance"]
        if training:
            batch_mean, batch_var = tf.nn.moments(x, axes=[0, 1, 2])
            mean.assign(BN_MOMENTUM * mean + (1 - BN_MOMENTUM) * batch_mean)
            var.assign(BN_MOMENTUM * var + (1 - BN_MOMENTUM) * batch_var)
            return tf.nn.batch_normalization(x, batch_mean, batch_var, beta, gamma, BN_EPSILON)
        return tf.nn.batch_normalization(x, mean, var, beta, gamma, BN_EPSILON)

    def _deconv_block(self, name: str, x: tf.Tensor, training: bool) -> tf.Tensor:
        w, b = self._by_name[f"{name}/deconv/W"], self._by_name[f"{name}/deconv/b"]
        shape = tf.shape(x)
        out_shape = tf.stack([shape[0], shape[1] * 2, shape[2] * 2, tf.shape(w)[2]])
        y = tf.nn.conv2d_transpose(x, w, out_shape, strides=2, padding="SAME")
        y = tf.nn.bias_add(y, b)
        return tf.nn.relu(self._batch_norm(name, y, training))

    def _fuse(self, name: str, decoder: tf.Tensor, skip: tf.Tensor) -> tf.Tensor:
        return self._conv(f"{name}/fuse", tf.concat([decoder, _skip_to_log(skip)], axis=-1))

    # -- the network ----------------------------------------------------------------------------
    def log_prediction(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        """`y_log`: the network's prediction in the log domain."""
        x255 = x * 255.0
        h = x255[..., ::-1] - tf.constant(VGG_MEAN_BGR, tf.float32)  # RGB -> BGR, minus mean
        skips = {0: x255}
        for block, conv, _ in ENCODER:
            h = tf.nn.relu(self._conv(f"conv{block}_{conv}", h))
            if conv == (2 if block <= 2 else 3):
                skips[block] = h
                h = tf.nn.max_pool2d(h, 2, 2, "SAME")
        h = tf.nn.relu(self._batch_norm("h6", self._conv("h6/conv", h), training))
        fuse_with = dict(FUSIONS)
        for name, _, _ in DECODER:
            if name in fuse_with:
                h = self._fuse(name, h, skips[fuse_with[name]])
            h = self._deconv_block(name, h, training)
        h = self._fuse("h6", h, skips[1])
        h = tf.nn.relu(self._batch_norm("h7", self._conv("h7/conv", h), training))
        return self._fuse("h7", h, skips[0])

    def _infer_impl(self, x: tf.Tensor) -> tf.Tensor:
        return self.log_prediction(x, training=False)

    def predict_log(self, x: np.ndarray) -> np.ndarray:
        """Inference on a numpy batch (N, H, W, 3) -> y_log (N, H, W, 3); one trace, all sizes."""
        return self._infer(tf.convert_to_tensor(x, tf.float32)).numpy()

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """Blended HDR output as the authors' `get_final` (x^2 linearisation, gamma 1)."""
        y_log = self.log_prediction(x)
        alpha = blend_alpha(tf.reduce_max(x, -1, keepdims=True), tf.clip_by_value)
        return (1 - alpha) * tf.square(x) + alpha * (tf.exp(y_log) - LOG_EPS)


def training_init(model: HDRCNN, seed: int = 0) -> None:
    """The authors' initialisation for training from scratch (`architecture.initial_tensors`)."""
    model.set_weights(initial_tensors(model.width_factor, seed))
