"""Training losses (TensorFlow): the paper's masked log-domain losses and the temporal
regularisation of Eilertsen, Mantiuk & Unger (CVPR 2019).

All losses take the network's `y_log` and the linear target `y_true`, (N, H, W, 3), and only
count pixels where the target is near or above clipping.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from ..architecture import LOG_EPS, blend_alpha
from .illuminance import ILLUMINANCE_WEIGHTS, gaussian_taps

LOSSES = ("ir", "l2")  # illuminance + reflectance (default), plain masked log-L2
REGULARIZATIONS = ("none", "coherence", "sparse-jacobian")
LOSS_MASKS = ("target", "blend")  # the authors' mask; or also where the blend uses the network


def target_mask(y_true: tf.Tensor) -> tf.Tensor:
    """clip((max_c y - 1 + tau) / tau, 0, 1), shape (N, H, W, 1)."""
    return blend_alpha(tf.reduce_max(y_true, axis=-1, keepdims=True), tf.clip_by_value)


def input_blend_mask(x: tf.Tensor) -> tf.Tensor:
    """The inference blend's alpha of an input batch: clip((max_c x - 1 + tau) / tau, 0, 1)."""
    return target_mask(x)


def loss_mask(kind: str, y_true: tf.Tensor, x: tf.Tensor | None = None) -> tf.Tensor:
    """Where the loss looks, (N, H, W, 1).

    target: the authors' mask, pixels whose target is near or above white. blend: also every
    pixel whose output the inference blend takes (partly) from the network. They differ below
    white: an input at 0.95 (display-referred) is a target near 0.89 under a gamma-2.2 camera,
    which the target mask leaves out, so there the network is used without being trained.
    """
    if kind == "target":
        return target_mask(y_true)
    if kind == "blend":
        if x is None:
            raise ValueError("the 'blend' loss mask needs the input batch")
        return tf.maximum(target_mask(y_true), input_blend_mask(x))
    raise ValueError(f"unknown loss mask {kind!r}; one of {', '.join(LOSS_MASKS)}")


def over_boost_weights(
    y_log: tf.Tensor, y_true: tf.Tensor, weight: float, headroom_stops: float
) -> tf.Tensor:
    """Per-pixel loss weights, (N, H, W, 1): 1 + `weight` where the prediction is above the
    target (mean log error over the channels) and the target's brightest channel is less than
    `headroom_stops` stops above white; 1 elsewhere.

    Boosting a highlight that is only a little above white is the error that makes a
    reconstruction worse than the linearised input, while under-boosting a strong one still
    gains; the asymmetry teaches the network to stay near the input without evidence.
    """
    over = tf.reduce_mean(y_log - log_target(y_true), axis=-1, keepdims=True) > 0.0
    faint = tf.reduce_max(y_true, axis=-1, keepdims=True) < 2.0**headroom_stops
    hit = tf.cast(tf.logical_and(over, faint), tf.float32)
    return tf.stop_gradient(1.0 + weight * hit)


def weighted_loss_mask(
    mask: tf.Tensor,
    y_log: tf.Tensor,
    y_true: tf.Tensor,
    over_boost_weight: float = 0.0,
    over_boost_stops: float = 1.0,
) -> tf.Tensor:
    """A `loss_mask` times `over_boost_weights` (unchanged when the weight is 0): the mask of
    the reconstruction loss, not of the temporal regularisation."""
    if over_boost_weight:
        mask = mask * over_boost_weights(y_log, y_true, over_boost_weight, over_boost_stops)
    return mask


_TAPS = gaussian_taps()


def illuminance(log_rgb: tf.Tensor) -> tf.Tensor:
    """Blurred log luminance, (N, H, W, 1)."""
    lum = tf.reduce_sum(log_rgb * tf.constant(ILLUMINANCE_WEIGHTS, tf.float32), -1, keepdims=True)
    k = tf.constant(_TAPS)
    n = len(_TAPS)
    lum = tf.nn.conv2d(lum, tf.reshape(k, [n, 1, 1, 1]), 1, "SAME")
    return tf.nn.conv2d(lum, tf.reshape(k, [1, n, 1, 1]), 1, "SAME")


def log_target(y_true: tf.Tensor) -> tf.Tensor:
    return tf.math.log(tf.maximum(y_true, 0.0) + LOG_EPS)


def illuminance_reflectance_loss(
    y_log: tf.Tensor, y_true: tf.Tensor, mask: tf.Tensor | None = None, weight: float = 0.5
) -> tf.Tensor:
    """mean(mask * (w (ill_pred - ill_true)^2 + (1 - w) (refl_pred - refl_true)^2)); the
    mask defaults to the target mask."""
    y_true_log = log_target(y_true)
    ill_pred, ill_true = illuminance(y_log), illuminance(y_true_log)
    refl_pred, refl_true = y_log - ill_pred, y_true_log - ill_true
    if mask is None:
        mask = target_mask(y_true)
    per_pixel = weight * tf.square(ill_pred - ill_true) + (1.0 - weight) * tf.square(
        refl_pred - refl_true
    )
    return tf.reduce_mean(per_pixel * mask)


def log_l2_loss(y_log: tf.Tensor, y_true: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
    """mean(mask * (y_log - log(y + eps))^2); the mask defaults to the target mask."""
    if mask is None:
        mask = target_mask(y_true)
    return tf.reduce_mean(tf.square(y_log - log_target(y_true)) * mask)


def reconstruction_loss(
    kind: str, y_log: tf.Tensor, y_true: tf.Tensor, mask: tf.Tensor | None = None
) -> tf.Tensor:
    """The `kind` loss over `mask` (see `loss_mask`; default the target mask)."""
    if kind == "ir":
        return illuminance_reflectance_loss(y_log, y_true, mask)
    if kind == "l2":
        return log_l2_loss(y_log, y_true, mask)
    raise ValueError(f"unknown loss {kind!r}; one of {', '.join(LOSSES)}")


# -- temporal regularisation ----------------------------------------------------------------------
IDENTITY_TRANSFORM = np.array([1, 0, 0, 0, 1, 0, 0, 0], np.float32)


def affine_transform(
    size: tuple[int, int], dx: float, dy: float, rotation: float, zoom: float, shear: float
) -> np.ndarray:
    """TensorFlow's 8-vector (output pixel -> input pixel) for a small affine motion about the
    image centre. Angles in degrees, zoom as a scale factor."""
    h, w = size
    r, s = math.radians(rotation), math.radians(shear)
    rot = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
    sh = np.array([[1.0, math.tan(s)], [0.0, 1.0]])
    a = rot @ sh / zoom
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    t = c - a @ c + np.array([dx, dy])
    return np.array([a[0, 0], a[0, 1], t[0], a[1, 0], a[1, 1], t[1], 0, 0], np.float32)


def random_transforms(
    rng: np.random.Generator, n: int, size: tuple[int, int], strength: float = 1.0
) -> np.ndarray:
    """n random small motions: translation +-2 px, rotation +-1 deg, zoom +-3 %, shear +-1 deg,
    each range times `strength`. Shape (n, 8)."""
    u = lambda r: rng.uniform(-r * strength, r * strength)  # noqa: E731
    return np.stack(
        [affine_transform(size, u(2.0), u(2.0), u(1.0), 1.0 + u(0.03), u(1.0)) for _ in range(n)]
    ).astype(np.float32)


def warp(images: tf.Tensor, transforms: tf.Tensor) -> tf.Tensor:
    """Resample each image by its transform (bilinear, reflected borders)."""
    shape = tf.shape(images)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=shape[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )


def coherence_term(
    y_log: tf.Tensor, y_log_of_moved: tf.Tensor, transforms: tf.Tensor, mask: tf.Tensor
) -> tf.Tensor:
    """mean((f(T(x)) - T(f(x)))^2 * T(mask)): the prediction should move with the image."""
    return tf.reduce_mean(
        tf.square(y_log_of_moved - warp(y_log, transforms)) * warp(mask, transforms)
    )


def sparse_jacobian_term(
    y_log: tf.Tensor,
    y_log_of_moved: tf.Tensor,
    y_true: tf.Tensor,
    transforms: tf.Tensor,
    mask: tf.Tensor,
) -> tf.Tensor:
    """mean(((f(T(x)) - f(x)) - (T(y) - y))^2 * mask): the prediction should change as the
    target changes under the same motion."""
    t_log = log_target(y_true)
    change_true = warp(t_log, transforms) - t_log
    return tf.reduce_mean(tf.square((y_log_of_moved - y_log) - change_true) * mask)


def regularization_term(
    kind: str,
    y_log: tf.Tensor,
    y_log_of_moved: tf.Tensor,
    y_true: tf.Tensor,
    transforms: tf.Tensor,
    mask: tf.Tensor | None = None,
) -> tf.Tensor:
    """The `kind` regularisation over `mask` (default the target mask)."""
    if mask is None:
        mask = target_mask(y_true)
    if kind == "coherence":
        return coherence_term(y_log, y_log_of_moved, transforms, mask)
    if kind == "sparse-jacobian":
        return sparse_jacobian_term(y_log, y_log_of_moved, y_true, transforms, mask)
    raise ValueError(f"unknown regularisation {kind!r}; one of {', '.join(REGULARIZATIONS)}")
