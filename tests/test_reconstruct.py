"""Pipeline invariants of the numpy reconstruction API."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hdrcnn.reconstruct import (
    InputImageError,
    ReconstructionCancelled,
    Reconstructor,
    as_unit_rgb,
    linearize_pixels,
    reconstruct,
    reference_size,
    tile_starts,
)
from napari_hdrcnn.weights import WeightFileError


@pytest.fixture(scope="module")
def small(small_weights_file):
    return Reconstructor(small_weights_file, device="cpu")


def test_native_output_has_input_size_for_any_shape(small, clipped_photo):
    for img in (clipped_photo, clipped_photo[:33, :47], clipped_photo[:5, :3]):
        r = small.run(img)
        assert r.hdr.shape == img.shape and r.hdr.dtype == np.float32
        assert r.mask.shape == img.shape[:2]
        assert np.all(np.isfinite(r.hdr)) and r.hdr.min() >= 0


def test_input_is_never_modified(small, clipped_photo):
    before = clipped_photo.copy()
    small.run(clipped_photo, gamma=1.3, scaling=1.2)
    np.testing.assert_array_equal(clipped_photo, before)


@pytest.mark.parametrize("method", ["square", "gamma2.2", "srgb"])
@pytest.mark.parametrize("gamma", [1.0, 1.25])
def test_pixels_far_from_clipping_are_the_linearised_input(small, clipped_photo, method, gamma):
    r = small.run(clipped_photo, linearize=method, gamma=gamma)
    x = clipped_photo.astype(np.float32) / 255
    far = r.mask == 0
    assert far.mean() > 0.5 and (~far).any()
    np.testing.assert_allclose(r.hdr[far], linearize_pixels(x, method)[far], rtol=2e-5, atol=1e-7)


def test_square_linearisation_is_x_squared(small, clipped_photo):
    r = small.run(clipped_photo, linearize="square")
    x = clipped_photo.astype(np.float64) / 255
    far = r.mask == 0
    np.testing.assert_allclose(r.hdr[far], (x**2)[far], rtol=1e-5)


def network_output(small, x):
    """exp(y_log) - 1/255 of the 72x100 test photo, reflect-padded to 96x128 as the pipeline."""
    pad = np.pad(x, ((0, 96 - 72), (0, 128 - 100), (0, 0)), mode="reflect")
    return np.maximum(np.exp(small.predict_log(pad)[:72, :100]) - 1 / 255, 0)


def test_gamma_one_is_the_plain_blend(small, clipped_photo):
    r = small.run(clipped_photo, gamma=1.0, linearize="square")
    x = clipped_photo.astype(np.float32) / 255
    alpha = np.clip((x.max(-1, keepdims=True) - 0.95) / 0.05, 0, 1)
    expected = (1 - alpha) * x**2 + alpha * network_output(small, x)
    np.testing.assert_allclose(r.hdr, expected, rtol=1e-5, atol=1e-6)


def test_per_channel_blend_keeps_the_channels_that_did_not_clip(small, clipped_photo):
    img = clipped_photo.copy()
    img[:20, :30] = (120, 250, 255)  # a sky-like patch: only blue at white, green near it
    r = small.run(img, blend="per-channel", linearize="square")
    x = img.astype(np.float32) / 255
    network = network_output(small, x)
    alpha = np.clip((x - 0.95) / 0.05, 0, 1)  # one per channel
    np.testing.assert_allclose(r.hdr, (1 - alpha) * x**2 + alpha * network, rtol=1e-5, atol=1e-6)
    patch = r.hdr[:20, :30]
    np.testing.assert_allclose(patch[..., 0], (120 / 255) ** 2, rtol=1e-6)  # measured, kept
    np.testing.assert_allclose(patch[..., 2], network[:20, :30, 2], rtol=1e-5)  # clipped
    # the authors' blend replaces the whole pixel, the red channel included
    authors = small.run(img, blend="max", linearize="square").hdr[:20, :30]
    np.testing.assert_allclose(authors[..., 0], network[:20, :30, 0], rtol=1e-5)
    np.testing.assert_allclose(r.mask, alpha.max(-1), atol=1e-6)


@pytest.mark.parametrize("gamma", [1.0, 1.2])
def test_consistent_blend_holds_the_network_to_what_the_photo_measured(small, clipped_photo, gamma):
    img = clipped_photo.copy()
    img[:20, :30] = (120, 248, 255)  # red far from white, green in the blend band, blue clipped
    r = small.run(img, blend="consistent", linearize="square", gamma=gamma)
    x = img.astype(np.float32) / 255
    x_net = x ** (1 / gamma)
    network = network_output(small, x_net)
    tol = 1 / 255
    low, high = (
        ((x - tol).clip(0, 1) ** 2) ** (1 / gamma),
        ((x + tol).clip(0, 1) ** 2) ** (1 / gamma),
    )
    high = np.where(x >= 1 - 0.5 / 255, np.inf, high)
    held = np.clip(network, low, high)
    alpha = np.clip((x_net - 0.95) / 0.05, 0, 1)
    expected = ((1 - alpha) * (x**2) ** (1 / gamma) + alpha * held) ** gamma
    np.testing.assert_allclose(r.hdr, expected, rtol=2e-5, atol=1e-6)
    # every channel below white stays within a code of its measured value, every clipped one
    # at least at white's lower edge, whatever the (random) network predicts
    below = x < 1 - 0.5 / 255
    assert np.all(r.hdr[below] <= ((x + tol).clip(0, 1) ** 2)[below] * (1 + 1e-5))
    assert np.all(r.hdr[below] >= ((x - tol).clip(0, 1) ** 2)[below] * (1 - 1e-5))
    assert np.all(r.hdr[~below] >= (1 - tol) ** 2 * (1 - 1e-5))
    # per-channel blend with the same weights lets the network's value through
    free = small.run(img, blend="per-channel", linearize="square", gamma=gamma).hdr
    assert not np.allclose(free[:20, :30, 1], r.hdr[:20, :30, 1], rtol=1e-3)


def test_blend_defaults_to_the_weight_file(small_weights_file, clipped_photo, tmp_path):
    from napari_hdrcnn.weights import load_weights, write_weights

    w = load_weights(small_weights_file)
    assert w.blend == "max"
    w.blend = "per-channel"
    path = tmp_path / "per_channel.npz"
    write_weights(w, path)
    assert load_weights(path).blend == "per-channel"
    by_file = reconstruct(clipped_photo, path, device="cpu")
    asked = reconstruct(clipped_photo, small_weights_file, blend="per-channel", device="cpu")
    np.testing.assert_array_equal(by_file, asked)


def test_tiled_equals_untiled_within_tolerance(small):
    rng = np.random.default_rng(0)
    h, w = 400, 520
    yy, xx = np.mgrid[0:h, 0:w]
    img = 0.4 + 0.3 * np.sin(xx / 17.0)[..., None] + 0.1 * rng.normal(size=(h, w, 3))
    img += 2.0 * np.exp(-((yy - 200) ** 2 + (xx - 260) ** 2) / 3000.0)[..., None]
    img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    calls = []
    whole = small.run(img, tile=1024)
    tiled = small.run(img, tile=256, overlap=64, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 6) for i in range(7)]  # 2 x 3 tiles over the padded 416 x 544
    clipped = whole.mask > 0
    assert clipped.mean() > 0.03
    # Only pixels the network replaces can differ. Stated tolerance: at most 0.1 stop (log2)
    # anywhere, median below 0.01 stop (measured: max 0.05, median 0.0002).
    np.testing.assert_array_equal(tiled.hdr[~clipped], whole.hdr[~clipped])
    diff = np.abs(np.log2(tiled.hdr[clipped] + 1e-3) - np.log2(whole.hdr[clipped] + 1e-3))
    assert np.median(diff) < 0.01 and diff.max() < 0.1


def test_tile_starts_cover_with_overlap():
    for length in (96, 200, 1000, 4000):
        starts = tile_starts(length, 256, 64)
        assert starts[0] == 0 and starts[-1] + 256 == max(length, 256) or length < 256
        assert all(b - a <= 256 - 64 for a, b in zip(starts, starts[1:]))


def test_cancel_stops_between_tiles(small, clipped_photo):
    seen = []

    def cancelled():
        return len(seen) >= 2

    with pytest.raises(ReconstructionCancelled):
        small.run(
            np.tile(clipped_photo, (3, 3, 1)),
            tile=64,
            overlap=0,
            progress=lambda d, t: seen.append(d),
            cancelled=cancelled,
        )
    assert len(seen) == 2


def test_input_kinds(small, clipped_photo):
    grey = clipped_photo[..., 1]
    r = small.run(grey)
    assert r.hdr.shape == grey.shape
    rgba = np.concatenate([clipped_photo, np.full((*grey.shape, 1), 128, np.uint8)], -1)
    r = small.run(rgba)
    assert r.hdr.shape == rgba.shape
    np.testing.assert_allclose(r.hdr[..., 3], 128 / 255, rtol=1e-6)
    r16 = small.run(clipped_photo.astype(np.uint16) * 257)
    r8 = small.run(clipped_photo)
    np.testing.assert_allclose(r16.hdr, r8.hdr, rtol=1e-4, atol=1e-6)
    rf = small.run(clipped_photo.astype(np.float32) / 255)
    np.testing.assert_allclose(rf.hdr, r8.hdr, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((4, 4, 5), np.uint8), "shape"),
        (np.zeros((4, 4, 3), np.int32), "integer"),
        (np.full((4, 4, 3), 3.0, np.float32), "already HDR"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
        (np.zeros((4, 4, 3), bool), "pixel type"),
    ],
)
def test_bad_inputs_are_explained(bad, match):
    with pytest.raises(InputImageError, match=match):
        as_unit_rgb(bad)


def test_reference_sizing_crops_and_resizes(small, clipped_photo):
    assert reference_size(1000, 700) == (992, 704)
    assert reference_size(10, 10) == (32, 32)
    r = small.run(clipped_photo, sizing="reference", width=64, height=64)
    assert r.hdr.shape == (64, 64, 3) and r.ldr.shape == (64, 64, 3)
    with pytest.raises(ValueError, match="width and height"):
        small.run(clipped_photo, sizing="reference")


def test_scaling_pushes_near_white_into_clipping(small, clipped_photo):
    plain = small.run(clipped_photo)
    scaled = small.run(clipped_photo, scaling=1.5)
    assert (scaled.mask > 0).sum() > (plain.mask > 0).sum()


def test_module_function_and_mask(small_weights_file, clipped_photo):
    hdr, mask = reconstruct(clipped_photo, small_weights_file, device="cpu", return_mask=True)
    assert hdr.shape == clipped_photo.shape and mask.shape == clipped_photo.shape[:2]


def test_missing_default_model_message(monkeypatch, tmp_path):
    from napari_hdrcnn import weights

    monkeypatch.setattr(weights, "default_weights_path", lambda: tmp_path / "none.npz")
    with pytest.raises(WeightFileError, match="embedded default model"):
        Reconstructor("default")


def test_bad_options_are_refused(small, clipped_photo):
    with pytest.raises(ValueError, match="gamma"):
        small.run(clipped_photo, gamma=0)
    with pytest.raises(ValueError, match="tile"):
        small.run(clipped_photo, tile=100)
    with pytest.raises(ValueError, match="linearisation"):
        small.run(clipped_photo, linearize="cubic")
    with pytest.raises(ValueError, match="unknown blend"):
        small.run(clipped_photo, blend="soft")


def test_overflowing_network_output_stays_finite(small_weights_file, clipped_photo):
    from napari_hdrcnn.weights import load_weights

    w = load_weights(small_weights_file)
    tensors = [t.copy() for t in w.tensors]
    tensors[-1][:] = 500.0  # h7 fuse bias: y_log = 500, exp() overflows float32
    from napari_hdrcnn.weights import Weights

    r = Reconstructor(Weights(tensors, w.width_factor, w.linearize), device="cpu").run(
        clipped_photo
    )
    assert np.all(np.isfinite(r.hdr)) and r.hdr.max() <= 65504
    far = r.mask == 0
    np.testing.assert_allclose(r.hdr[far], (clipped_photo[far] / 255.0) ** 2.2, rtol=1e-5)
