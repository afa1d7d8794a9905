"""Both engines (TensorFlow and OpenVINO) against the independent NumPy implementation of the
spec."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hdrcnn.architecture import macs_per_pixel, parameter_count
from napari_hdrcnn.reconstruct import Reconstructor
from napari_hdrcnn.weights import load_weights
from numpy_reference import forward_final, forward_log
from testdata import random_tensors


def test_parameter_and_mac_counts_match_the_spec():
    assert parameter_count(1.0) == 29_447_332
    assert macs_per_pixel(1.0) * 1024 * 768 / 1e9 == pytest.approx(363.3, abs=0.05)


@pytest.mark.parametrize("engine", ["tensorflow", "openvino"])
@pytest.mark.parametrize("shape", [(64, 64), (32, 96)])
def test_model_matches_numpy_reference_in_log_domain(authors_weights_file, shape, engine):
    weights = load_weights(authors_weights_file)
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (*shape, 3)).astype(np.float32)
    x[: shape[0] // 2, : shape[1] // 2] = 1.0  # a clipped quarter
    ours = Reconstructor(weights, device="cpu", engine=engine).predict_log(x)
    ref = forward_log(x, weights.tensors)
    assert np.abs(ref).max() > 0.5  # the comparison is not between two near-zero maps
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("engine", ["tensorflow", "openvino"])
def test_final_blend_matches_reference_predictor_with_gamma(authors_weights_file, engine):
    weights = load_weights(authors_weights_file)
    rng = np.random.default_rng(4)
    img = (rng.uniform(0, 1, (32, 64, 3)) ** 0.3 * 255).astype(np.uint8)
    img[:8, :16] = 255
    result = Reconstructor(weights, device="cpu", engine=engine).run(
        img, gamma=1.2, linearize="square"
    )
    ref = forward_final(img / 255.0, weights.tensors, gamma=1.2)
    assert result.mask.max() == 1.0 and result.mask.min() == 0.0
    np.testing.assert_allclose(np.log(result.hdr + 1 / 255), np.log(ref + 1 / 255), atol=1e-4)


def test_width_factor_variant_runs_any_multiple_of_32_without_retrace():
    from napari_hdrcnn.model import HDRCNN

    model = HDRCNN(0.125)
    model.set_weights(random_tensors(0.125, seed=5))
    for h, w in [(32, 32), (64, 160), (96, 32)]:
        y = model.predict_log(np.full((1, h, w, 3), 0.5, np.float32))
        assert y.shape == (1, h, w, 3) and np.all(np.isfinite(y))
    assert model._infer.experimental_get_tracing_count() == 1


def test_one_blend_formula_for_numpy_tensorflow_and_the_training_preview():
    import tensorflow as tf

    from napari_hdrcnn.architecture import blend_alpha
    from napari_hdrcnn.pixels import blend_weight
    from napari_hdrcnn.training.loop import preview_image
    from napari_hdrcnn.training.losses import input_blend_mask

    level = np.array([0.0, 0.9, 0.95, 0.975, 1.0, 1.2], np.float32)
    np.testing.assert_allclose(blend_alpha(level), [0, 0, 0, 0.5, 1, 1], atol=1e-6)
    tf_alpha = blend_alpha(tf.constant(level), tf.clip_by_value).numpy()
    np.testing.assert_array_equal(tf_alpha, blend_alpha(level).astype(np.float32))
    x = np.random.default_rng(0).uniform(0.8, 1.0, (1, 4, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        input_blend_mask(tf.constant(x)).numpy()[0, ..., 0], blend_weight(x[0])[..., 0]
    )
    y_log = np.zeros((4, 5, 3), np.float32)
    panel = preview_image(x[0], x[0], y_log)[:, 10:]
    alpha = blend_weight(x[0])
    expected = (1 - alpha) * x[0] ** 2.2 + alpha * (np.exp(y_log) - 1 / 255)
    np.testing.assert_allclose(panel, np.clip(expected * 0.25, 0, 1) ** (1 / 2.2), atol=1e-6)
