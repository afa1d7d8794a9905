"""The network in TensorFlow (model.HDRCNN): the GPU engine and the reference the others are
tested against. TensorFlow is imported when a network is made."""

from __future__ import annotations

import numpy as np

from ..weights import Weights


def _tf_device(device: str) -> str:
    return "/CPU:0" if device == "cpu" else ("/GPU:0" if device == "gpu" else "")


class TensorFlowNetwork:
    """model.HDRCNN with the weights loaded, on `device` ('auto', 'cpu' or 'gpu')."""

    engine = "tensorflow"

    def __init__(self, weights: Weights, device: str = "auto"):
        import tensorflow as tf

        from ..model import HDRCNN

        if device == "gpu" and not tf.config.list_physical_devices("GPU"):
            raise RuntimeError(
                "GPU requested but TensorFlow sees no GPU; use device 'cpu' or install the "
                "'gpu' extra"
            )
        self._tf = tf
        self._device = _tf_device(device)
        with tf.device(self._device):
            self.model = HDRCNN(weights.width_factor)
            self.model.set_weights(weights.tensors)

    def predict_log(self, x: np.ndarray) -> np.ndarray:
        """y_log (H, W, 3) for one (H, W, 3) image with H, W multiples of 32."""
        with self._tf.device(self._device):
            return self.model.predict_log(x[None])[0]
