"""The SI-HDR metrics: PU21 check values, alignment, the clipped region, CRF correction,
temporal stability."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_hdrcnn import metrics


def scene(h: int = 64, w: int = 96, seed: int = 0) -> np.ndarray:
    """A linear HDR scene: coloured gradient, texture and a sun 200x above the mid-tones."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = (0.05 + 0.6 * xx / w)[..., None] * np.array([1.0, 0.85, 0.6], np.float32)
    texture = 1.0 + 0.3 * np.sin(xx / 2.5)[..., None] * np.cos(yy / 3.0)[..., None]
    sun = 200.0 * np.exp(-((yy - h / 3) ** 2 + (xx - 2 * w / 3) ** 2) / 40.0)[..., None]
    noise = rng.uniform(0.95, 1.05, (h, w, 3)).astype(np.float32)
    return (base * texture * noise + sun * np.array([1.0, 0.95, 0.8], np.float32)).astype(
        np.float32
    )


def camera(hdr: np.ndarray, clip: float = 95.0) -> np.ndarray:
    e = 1.0 / np.percentile(hdr.max(axis=-1), clip)
    return np.floor(np.clip(hdr * e, 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8)


# -- PU21 ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "luminance, expected",
    [(0.01, 0.3722), (1.0, 36.5439), (100.0, 256.3839), (1000.0, 420.0969), (10000.0, 595.3939)],
)
def test_pu21_check_values(luminance, expected):
    assert float(metrics.pu21_encode(np.array([luminance]))[0]) == pytest.approx(expected, abs=5e-5)
    # float32 images are encoded in float32: close enough for any PSNR digit
    v32 = metrics.pu21_encode(np.array([luminance], np.float32))
    assert v32.dtype == np.float32
    assert float(v32[0]) == pytest.approx(expected, abs=1e-3)


def test_pu21_clamps_to_its_range_and_is_monotonic():
    lum = np.array([0.0, 0.001, 0.005, 1.0, 1e4, 1e6])
    v = metrics.pu21_encode(lum)
    assert v[0] == v[1] == v[2] and v[4] == v[5]
    grid = np.geomspace(0.005, 1e4, 500)
    assert np.all(np.diff(metrics.pu21_encode(grid)) > 0)


def test_pq_round_trip():
    lum = np.geomspace(0.005, 1e4, 50)
    np.testing.assert_allclose(metrics.pq_decode(metrics.pq_encode(lum)), lum, rtol=1e-9)
    assert metrics.pq_encode(np.array([1e4]))[0] == pytest.approx(1.0)


def test_psnr_peak_is_256():
    assert metrics.psnr_from_mse(256.0**2) == pytest.approx(0.0)
    assert metrics.psnr_from_mse(0.0) == math.inf


# -- masks and alignment -------------------------------------------------------------------------
def test_clipped_and_unclipped_thresholds():
    ldr = np.array([[[241, 0, 0], [0, 242, 0], [10, 10, 255]]], np.uint8)
    assert metrics.clipped_mask(ldr).tolist() == [[False, True, True]]
    assert metrics.unclipped_mask(ldr).tolist() == [[True, False, False]]
    # 16-bit and float inputs use the same 8-bit thresholds
    assert metrics.clipped_mask(ldr.astype(np.uint16) * 257).tolist() == [[False, True, True]]
    assert metrics.clipped_mask(ldr / 255.0).tolist() == [[False, True, True]]


def test_gain_uses_only_unclipped_pixels():
    ref = scene()
    ldr = camera(ref)
    pred = ref / 7.0
    pred[metrics.clipped_mask(ldr)] = 1e-3  # whatever happens in the clipped region
    assert metrics.alignment_gain(pred, ref, ldr) == pytest.approx(7.0, rel=1e-5)


def test_absolute_scale_maps_reference_peak_to_4000():
    ref = scene()
    s = metrics.absolute_scale(ref)
    ref_abs = metrics.to_absolute(ref, s)
    assert float(metrics.luminance(ref_abs).max()) == pytest.approx(4000.0, rel=1e-4)
    assert ref_abs.min() >= metrics.L_MIN and ref_abs.max() <= metrics.L_MAX
    with pytest.raises(ValueError, match="black"):
        metrics.absolute_scale(np.zeros((4, 4, 3), np.float32))


# -- scores --------------------------------------------------------------------------------------
def test_identical_images_give_infinite_psnr_and_ssim_one():
    ref = scene()
    ldr = camera(ref)
    s = metrics.score(ref.copy(), ref, ldr)
    m = s.metrics
    assert m["pu21_psnr"] == math.inf and m["pu21_psnr_clipped"] == math.inf
    assert m["pu21_ssim"] == pytest.approx(1.0, abs=1e-6)
    assert m["log_rmse_clipped"] == 0.0
    assert m["pu21_ssim+CRF"] == pytest.approx(1.0, abs=1e-4)
    assert m["pu21_psnr+CRF"] > 60  # the fit of an identity is (nearly) exact
    assert 0.02 < s.clipped_fraction < 0.08


@pytest.mark.parametrize("gain", [1e-3, 0.37, 50.0])
def test_scores_do_not_depend_on_the_prediction_scale(gain):
    ref = scene()
    ldr = camera(ref)
    pred = ((ldr / 255.0) ** 2.2).astype(np.float32)
    pred[..., 0] *= 1.1  # not a perfect prediction
    a = metrics.score(pred, ref, ldr).metrics
    b = metrics.score(pred * np.float32(gain), ref, ldr).metrics
    assert all(math.isfinite(v) for v in a.values())
    for name in metrics.ALL_METRIC_NAMES:
        assert b[name] == pytest.approx(a[name], rel=2e-5, abs=2e-5), name


def test_log_rmse_counts_stops_in_the_clipped_region():
    ref = scene()
    ldr = camera(ref)
    clipped = metrics.clipped_mask(ldr)
    pred = ref.copy()
    pred[clipped] *= 2.0  # one stop too bright where clipped, exact elsewhere
    m = metrics.score(pred, ref, ldr, crf=False).metrics
    # the reference's brightest pixel maps to 4000 cd/m^2, so twice it clamps only above 10000
    assert m["log_rmse_clipped"] == pytest.approx(1.0, abs=1e-3)
    assert m["pu21_psnr"] > m["pu21_psnr_clipped"]  # the error is all inside the clipped region
    assert math.isnan(m["pu21_psnr+CRF"])


def test_no_clipped_pixels_gives_nan_for_clipped_metrics():
    ref = scene()[:8, :8] * 0 + 0.5
    ldr = np.full(ref.shape, 128, np.uint8)
    m = metrics.score(ref * 1.2, ref, ldr).metrics
    assert math.isnan(m["pu21_psnr_clipped"]) and math.isnan(m["log_rmse_clipped"])
    assert m["pu21_psnr"] == math.inf  # one gain explains everything
    assert math.isnan(m["pu21_ssim"])  # 8x8 is smaller than SSIM's 11-pixel window


def test_non_finite_predictions_are_scored_not_propagated():
    ref = scene()
    ldr = camera(ref)
    pred = ref.copy()
    clipped = np.argwhere(metrics.clipped_mask(ldr))
    pred[tuple(clipped[0])] = np.nan
    pred[tuple(clipped[1])] = np.inf
    pred[tuple(clipped[2])] = 1e38
    m = metrics.score(pred, ref, ldr).metrics
    assert all(math.isfinite(v) for v in m.values())
    assert m["pu21_psnr"] > m["pu21_psnr_clipped"] > 10


def test_score_rejects_mismatched_shapes():
    ref = scene()
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.score(ref[:32], ref, camera(ref))


# -- CRF correction ------------------------------------------------------------------------------
def test_crf_correction_undoes_a_tone_curve_and_colour_cast():
    ref = scene()
    ldr = camera(ref)
    # a smooth tone curve (compressive, as a tone mapper) and a warm colour cast
    distorted = (ref**0.6 * np.array([1.15, 1.0, 0.8], np.float32)).astype(np.float32)
    m = metrics.score(distorted, ref, ldr).metrics
    assert m["pu21_psnr+CRF"] > m["pu21_psnr"] + 10.0
    assert m["pu21_psnr+CRF"] > 40.0
    assert m["log_rmse_clipped+CRF"] < m["log_rmse_clipped"]


def test_crf_correction_of_the_reference_itself_is_nearly_identity():
    ref_abs = metrics.to_absolute(scene(), 20.0)
    out = metrics.crf_correct(ref_abs, ref_abs)
    assert out.dtype == np.float32 and out.shape == ref_abs.shape
    np.testing.assert_allclose(out, ref_abs, rtol=2e-3, atol=1e-3)


def test_polynomial_fit_recovers_a_cubic_and_ridge_pulls_to_identity():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.1, 0.9, (5000, 1))
    y = 0.3 * x**3 - 0.2 * x**2 + 0.9 * x + 0.05
    w = metrics.fit_polynomial(x, y, lam=0.0)
    np.testing.assert_allclose(w[:, 0], [0.3, -0.2, 0.9, 0.05], atol=1e-8)
    # with a huge penalty the fit is the identity map whatever the data
    w_ridge = metrics.fit_polynomial(x, y, lam=1e9)
    np.testing.assert_allclose(w_ridge[:, 0], [0, 0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(metrics.apply_polynomial(x, w)[:, 0], y[:, 0], atol=1e-6)


def test_chroma_conversion_round_trip():
    rgb = metrics.to_absolute(scene(), 50.0)
    back = metrics.yuv_to_rgb(metrics.rgb_to_yuv(rgb))
    np.testing.assert_allclose(back, rgb, rtol=1e-3, atol=1e-3)


def test_inputs_are_not_modified():
    ref = scene()
    ldr = camera(ref)
    pred = ref * 0.5
    copies = (ref.copy(), ldr.copy(), pred.copy())
    metrics.score(pred, ref, ldr)
    for before, after in zip(copies, (ref, ldr, pred)):
        np.testing.assert_array_equal(before, after)


# -- temporal stability ---------------------------------------------------------------------------
def test_temporal_stability_of_a_static_scene():
    ref = np.stack([scene()] * 4)
    steady = ref * 0.01  # relative scale: the measure is scale-invariant
    flicker = ref * np.array([1.0, 1.5, 1.0, 1.5], np.float32)[:, None, None, None]
    s = metrics.temporal_stability(steady, ref)
    assert s.output_change == 0.0 and s.comparison_change == 0.0 and s.ratio == 1.0
    f = metrics.temporal_stability(flicker, ref)
    assert f.output_change == pytest.approx(np.log2(1.5), rel=1e-4)
    assert f.ratio == math.inf


def test_temporal_stability_relative_to_a_moving_reference():
    frames = np.stack([scene() * np.float32(1.05**k) for k in range(6)])  # a slow fade
    same = metrics.temporal_stability(frames * 3.0, frames)
    assert same.comparison_change == pytest.approx(np.log2(1.05), rel=1e-3)
    assert same.ratio == pytest.approx(1.0, rel=1e-5)
    jitter = frames * np.array([1.0, 1.3] * 3, np.float32)[:, None, None, None]
    assert metrics.temporal_stability(jitter, frames).ratio > 3.0
    # an 8-bit input sequence (fixed exposure) is linearised before comparing
    e = 1.0 / np.percentile(frames[-1].max(axis=-1), 99.0)
    ldr = np.floor(np.clip(frames * e, 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8)
    from_input = metrics.temporal_stability(frames, ldr)
    assert from_input.comparison_change == pytest.approx(np.log2(1.05), rel=0.1)
    with pytest.raises(ValueError, match="T >= 2"):
        metrics.temporal_stability(frames[:1], frames[:1])


def test_a_prepared_reference_scores_like_score():
    ref = scene()
    ldr = camera(ref)
    scorer = metrics.ScoringReference(ref, ldr)
    for pred in (ref * 0.3, ((ldr / 255.0) ** 2.2).astype(np.float32)):
        assert scorer.score(pred).metrics == metrics.score(pred, ref, ldr).metrics
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.ScoringReference(ref, ldr[:10])
