"""tonemap: the previews' exposure and display encoding, exposure <-> contrast limits, and the
display range of an HDR image."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hdrcnn.tonemap import (
    DISPLAY_GAMMA,
    EXPOSURE_RANGE,
    display_range,
    exposure_limits,
    exposure_of,
    exposure_preview,
)


@pytest.mark.parametrize("stops", [-10.0, -3.0, -0.5, 0.0, 2.5, 4.0])
def test_exposure_limits_and_exposure_of_are_inverse(stops):
    lo, hi = exposure_limits(stops)
    assert lo == 0.0 and hi == pytest.approx(2.0**-stops)
    assert exposure_of((lo, hi)) == pytest.approx(stops)


def test_exposure_zero_puts_the_input_white_on_top():
    assert exposure_limits(0.0) == (0.0, 1.0)
    assert exposure_limits(-3.0) == (0.0, 8.0)
    assert exposure_of((0.0, 0.0)) == EXPOSURE_RANGE[1]  # no range: the brightest setting
    assert exposure_of(np.array([0.0, -1.0])) == EXPOSURE_RANGE[1]


def test_linear_preview_is_the_authors_formula():
    y = np.array([[[0.0, 1.0, 8.0], [2.0, 0.125, 100.0]]], np.float32)
    got = exposure_preview(y)  # -3 stops, y^0.5
    expected = (np.clip(np.sqrt(y / 8.0), 0, 1) * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.uint8 and got[0, 0, 2] == 255 and got[0, 1, 2] == 255
    assert got[0, 0, 1] == int(np.sqrt(1 / 8) * 255 + 0.5)  # white at -3 stops: 90
    # +2 stops brighter: 4x the value, 2x the display value
    assert exposure_preview(np.float32([[[0.01]]]), stops=2.0)[0, 0, 0] == int(0.2 * 255 + 0.5)


def test_display_referred_preview_matches_the_linear_one_where_nothing_changed():
    ldr = np.linspace(0, 1, 12, dtype=np.float32).reshape(1, 4, 3)
    linear = ldr.astype(np.float64) ** 2  # the square display encoding of DISPLAY_GAMMA 0.5
    a = exposure_preview(ldr, stops=-3.0, linear=False)
    b = exposure_preview(linear, stops=-3.0, linear=True)
    np.testing.assert_allclose(a.astype(int), b.astype(int), atol=1)
    np.testing.assert_array_equal(a, (np.clip(ldr * 2.0**-1.5, 0, 1) * 255 + 0.5).astype(np.uint8))
    assert DISPLAY_GAMMA == 0.5


def test_preview_of_bad_values_is_black():
    y = np.array([[[np.nan, np.inf, -np.inf], [-5.0, 0.0, 0.0]]], np.float32)
    np.testing.assert_array_equal(exposure_preview(y), np.zeros((1, 2, 3), np.uint8))


def test_display_range_is_robust_to_one_sun_and_nans():
    rng = np.random.default_rng(0)
    hdr = rng.uniform(0.0, 1.0, (100, 100, 3)).astype(np.float32)
    hdr[50, 50] = 1e6  # one sun
    hdr[0, :10] = np.nan
    (lo, hi), gamma = display_range(hdr)
    assert gamma == DISPLAY_GAMMA
    assert 0.0 <= lo < 0.02 and 0.98 < hi <= 1.0  # the percentiles, not the sun
    finite = hdr[np.isfinite(hdr)]
    assert hi == pytest.approx(float(np.percentile(finite, 99.5)))


def test_display_range_edge_cases():
    assert display_range(np.full((4, 4), np.nan, np.float32)) == ((0.0, 1.0), 1.0)
    (lo, hi), _ = display_range(np.full((4, 4), 2.0, np.float32))  # flat: a range above lo
    assert (lo, hi) == (2.0, 4.0)
    (lo, hi), _ = display_range(np.zeros((4, 4), np.float32))
    assert (lo, hi) == (0.0, 1.0)
    (lo, hi), _ = display_range(np.linspace(-1.0, 1.0, 201, dtype=np.float32))
    assert lo < 0 and lo == pytest.approx(-0.98)  # negative values keep their low limit
    big = np.arange(3_000_000, dtype=np.float32)  # sampled, still the right percentiles
    (lo, hi), _ = display_range(big, low_pct=0.0, high_pct=100.0)
    assert lo == 0.0 and hi > 2_990_000
