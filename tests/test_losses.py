"""Training losses and the temporal regularisation against independent numpy computations."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage, stats

from napari_hdrcnn.model import HDRCNN, training_init
from napari_hdrcnn.training.losses import (
    IDENTITY_TRANSFORM,
    affine_transform,
    coherence_term,
    gaussian_taps,
    illuminance_reflectance_loss,
    log_l2_loss,
    loss_mask,
    over_boost_weights,
    random_transforms,
    reconstruction_loss,
    regularization_term,
    target_mask,
    warp,
    weighted_loss_mask,
)

EPS = 1 / 255


def random_pair(seed=0, shape=(2, 32, 40, 3)):
    rng = np.random.default_rng(seed)
    y = rng.gamma(0.8, 1.0, shape).astype(np.float32)  # plenty of pixels above 0.95
    y_log = (np.log(y + EPS) + rng.normal(0, 0.3, shape)).astype(np.float32)
    return y_log, y


def test_mask_is_zero_below_095_and_one_above_white():
    y = np.array([0.5, 0.94, 0.975, 1.0, 3.0], np.float32)[None, :, None, None] * np.ones(3)
    m = target_mask(tf.constant(y, tf.float32)).numpy()[0, :, 0, 0]
    np.testing.assert_allclose(m, [0, 0, 0.5, 1, 1], atol=1e-5)


def test_over_boost_weights_only_where_a_faint_highlight_is_predicted_too_bright():
    # targets: faint (1.5x white, 0.58 stops) or strong (4x white, 2 stops); predictions a
    # quarter stop above or below each
    y = np.array([1.5, 1.5, 4.0, 4.0], np.float32)[None, :, None, None] * np.ones(3, np.float32)
    step = np.array([1, -1, 1, -1], np.float32)[None, :, None, None] * 0.25 * np.log(2)
    y_log = (np.log(y + EPS) + step).astype(np.float32)
    w = over_boost_weights(tf.constant(y_log), tf.constant(y), 3.0, 1.0).numpy()
    np.testing.assert_allclose(w[0, :, 0, 0], [4, 1, 1, 1])
    x = np.ones_like(y)
    plain = loss_mask("target", tf.constant(y), tf.constant(x)).numpy()
    np.testing.assert_array_equal(np.asarray(weighted_loss_mask(plain, y_log, y)), plain)
    weighted = np.asarray(weighted_loss_mask(plain, y_log, y, 3.0, 1.0))
    np.testing.assert_allclose(weighted, plain * w)
    # 2.5 stops of headroom makes the strong highlight count as faint too
    w = over_boost_weights(tf.constant(y_log), tf.constant(y), 3.0, 2.5).numpy()
    np.testing.assert_allclose(w[0, :, 0, 0], [4, 1, 4, 1])


def test_over_boost_weight_makes_over_prediction_cost_more_than_under_prediction():
    y = np.full((1, 16, 16, 3), 1.3, np.float32)
    x = np.ones_like(y)
    errors = {}
    for sign in (1, -1):
        y_log = (np.log(y + EPS) + sign * 0.3).astype(np.float32)
        mask = weighted_loss_mask(loss_mask("blend", y, x), y_log, y, 3.0, 1.0)
        errors[sign] = float(reconstruction_loss("l2", y_log, y, mask))
    assert errors[1] == pytest.approx(4 * errors[-1], rel=1e-5)


def test_blend_loss_mask_adds_the_pixels_the_inference_blend_takes_from_the_network():
    # an input at 0.975 (display) is a target of 0.975^2.2 = 0.946 under a gamma-2.2 camera:
    # the target mask gives it no weight, the blend takes half of its output from the network
    x = np.array([0.5, 0.975, 1.0, 1.0], np.float32)[None, :, None, None] * np.ones(3)
    y = np.array([0.5**2.2, 0.975**2.2, 1.0, 3.0], np.float32)[None, :, None, None]
    y = y * np.ones(3)
    x, y = tf.constant(x, tf.float32), tf.constant(y, tf.float32)
    np.testing.assert_allclose(
        loss_mask("target", y, x).numpy()[0, :, 0, 0], [0, 0, 1, 1], atol=1e-5
    )
    np.testing.assert_allclose(
        loss_mask("blend", y, x).numpy()[0, :, 0, 0], [0, 0.5, 1, 1], atol=1e-5
    )
    with pytest.raises(ValueError, match="needs the input"):
        loss_mask("blend", y)
    with pytest.raises(ValueError, match="unknown loss mask"):
        loss_mask("input", y, x)


def test_losses_use_the_given_mask():
    y_log, y = random_pair(3)
    mask = np.zeros(y.shape[:3] + (1,), np.float32)
    for kind in ("ir", "l2"):
        assert float(reconstruction_loss(kind, y_log, y, tf.constant(mask))) == 0.0
        assert float(reconstruction_loss(kind, y_log, y)) > 0.0


def test_taps_are_the_authors_kernel():
    # hdrcnn_train.py: kern1d = diff(norm.cdf(linspace(...))); kernel = sqrt(outer) / sum
    nsig, size = 2, 13
    interval = (2 * nsig + 1.0) / size
    k = np.diff(stats.norm.cdf(np.linspace(-nsig - interval / 2, nsig + interval / 2, size + 1)))
    k2 = np.sqrt(np.outer(k, k))
    t = gaussian_taps()
    np.testing.assert_allclose(np.outer(t, t), k2 / k2.sum(), rtol=1e-5)


def test_log_l2_matches_numpy_and_is_zero_when_exact():
    y_log, y = random_pair()
    mask = np.clip((y.max(-1, keepdims=True) - 0.95) / 0.05, 0, 1)
    expected = np.mean((y_log - np.log(y + EPS)) ** 2 * mask)
    assert float(log_l2_loss(y_log, y)) == pytest.approx(expected, rel=1e-5)
    assert float(log_l2_loss(np.log(y + EPS), y)) == pytest.approx(0.0, abs=1e-10)


def test_illuminance_reflectance_matches_numpy():
    y_log, y = random_pair(1)
    t = np.log(y + EPS)
    k = np.outer(gaussian_taps(), gaussian_taps())

    def ill(v):  # zero-padded 'SAME' convolution as the authors' tf.nn.conv2d
        lum = v @ np.array([0.213, 0.715, 0.072])
        return np.stack([ndimage.convolve(plane, k, mode="constant") for plane in lum])[..., None]

    mask = np.clip((y.max(-1, keepdims=True) - 0.95) / 0.05, 0, 1)
    ip, it = ill(y_log), ill(t)
    expected = np.mean((0.5 * (ip - it) ** 2 + 0.5 * ((y_log - ip) - (t - it)) ** 2) * mask)
    assert float(illuminance_reflectance_loss(y_log, y)) == pytest.approx(expected, rel=1e-4)
    assert float(reconstruction_loss("ir", t.astype(np.float32), y)) == pytest.approx(0, abs=1e-9)


def test_losses_ignore_targets_below_clipping():
    y_log, y = random_pair(2)
    y = np.minimum(y, 0.9)
    assert float(reconstruction_loss("ir", y_log, y)) == 0.0
    assert float(reconstruction_loss("l2", y_log, y)) == 0.0
    with pytest.raises(ValueError, match="unknown loss"):
        reconstruction_loss("l1", y_log, y)


def test_identity_warp_is_exact_and_a_shift_moves_content_left():
    img = np.random.default_rng(3).random((2, 16, 20, 3)).astype(np.float32)
    ident = np.tile(IDENTITY_TRANSFORM, (2, 1))
    np.testing.assert_array_equal(warp(img, ident).numpy(), img)
    np.testing.assert_allclose(
        np.tile(affine_transform((16, 20), 0, 0, 0, 1, 0), (1, 1))[0], IDENTITY_TRANSFORM, atol=1e-6
    )
    shift = np.tile(affine_transform((16, 20), 1.0, 0.0, 0.0, 1.0, 0.0), (2, 1))
    np.testing.assert_allclose(warp(img, shift).numpy()[:, :, :-1], img[:, :, 1:], atol=1e-6)


def test_random_transforms_are_small_and_deterministic():
    a = random_transforms(np.random.default_rng(5), 8, (64, 64), 1.0)
    b = random_transforms(np.random.default_rng(5), 8, (64, 64), 1.0)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (8, 8)
    np.testing.assert_allclose(a[:, [0, 4]], 1.0, atol=0.06)  # zoom 3 %, tiny rotation
    np.testing.assert_allclose(a[:, [1, 3]], 0.0, atol=0.05)
    assert np.abs(a[:, [2, 5]]).max() < 6.0  # +-2 px plus centre terms
    np.testing.assert_allclose(
        random_transforms(np.random.default_rng(5), 4, (64, 64), 0.0),
        np.tile(IDENTITY_TRANSFORM, (4, 1)),
        atol=1e-6,
    )


@pytest.mark.parametrize("kind", ["coherence", "sparse-jacobian"])
def test_regularization_is_zero_for_identity_and_positive_for_a_motion(kind):
    model = HDRCNN(0.0625)
    training_init(model, 0)
    rng = np.random.default_rng(6)
    x = rng.random((2, 64, 64, 3)).astype(np.float32)
    x[:, 20:40, 20:40] = 1.0
    y = (x**2.2 * np.where(x >= 1.0, 4.0, 1.0)).astype(np.float32)
    ident = np.tile(IDENTITY_TRANSFORM, (2, 1))
    y_log = model.log_prediction(x, training=True)
    moved = model.log_prediction(warp(x, ident), training=True)
    assert float(regularization_term(kind, y_log, moved, y, ident)) == 0.0
    motion = random_transforms(np.random.default_rng(7), 2, (64, 64), 3.0)
    moved = model.log_prediction(
        warp(x, motion) + 0.02 * rng.standard_normal(x.shape, np.float32), training=True
    )
    assert float(regularization_term(kind, y_log, moved, y, motion)) > 1e-6


def test_coherence_term_is_zero_when_the_prediction_moves_with_the_image():
    y_log = np.random.default_rng(8).normal(0, 1, (1, 32, 32, 3)).astype(np.float32)
    shift = affine_transform((32, 32), 2.0, -1.0, 0.0, 1.0, 0.0)[None]
    mask = np.ones((1, 32, 32, 1), np.float32)
    assert float(coherence_term(y_log, warp(y_log, shift), shift, mask)) == pytest.approx(0.0)
