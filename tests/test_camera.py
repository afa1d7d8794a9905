"""The virtual camera and the data pipeline (numpy only, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hdrcnn.io import write_exr, write_png
from napari_hdrcnn.training.camera import (
    CameraSettings,
    capture,
    clipped_fraction,
    colour_jitter_matrix,
    exposure_for_clip_fraction,
    gamma_curve,
    is_panorama,
    perspective_view,
    photo_crop,
    pyramid,
    sigmoid_curve,
)
from napari_hdrcnn.training.data import (
    Prefetcher,
    SampleSource,
    TrainingDataError,
    load_scenes,
    sanitize_linear,
    scene_from_array,
)


def sunny_scene(h: int, w: int, seed: int = 0, sun: tuple[float, float] = (0.3, 0.6)) -> np.ndarray:
    """A linear HDR scene: a coloured gradient with texture and a small sun 1000x brighter."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.05 + 0.5 * (xx / w)[..., None] * np.array([1.0, 0.8, 0.6], np.float32)
    base = base * (1 + 0.2 * rng.random((h, w, 1), dtype=np.float32))
    r2 = (yy - sun[0] * h) ** 2 + (xx - sun[1] * w) ** 2
    disk = (r2 < (0.06 * h) ** 2)[..., None] * np.array([1000.0, 900.0, 700.0], np.float32)
    glow = 20.0 * np.exp(-r2 / (0.15 * h) ** 2)[..., None]
    return (base + disk + glow).astype(np.float32)


def test_panorama_detection_by_aspect():
    assert is_panorama((512, 1024, 3)) and is_panorama((500, 1000))
    assert not is_panorama((512, 768, 3)) and not is_panorama((1024, 512, 3))


def test_perspective_view_points_where_yaw_and_pitch_say():
    h, w = 64, 128
    pano = np.zeros((h, w, 3), np.float32)
    # a marker at longitude +90 degrees, latitude +30 degrees (u = 0.75 w, v = h/2 - h/6)
    pano[h // 2 - h // 6 - 1 : h // 2 - h // 6 + 1, 3 * w // 4 - 1 : 3 * w // 4 + 1] = 1.0
    levels = pyramid(pano, 8)
    centre = perspective_view(levels, 32, yaw=90.0, pitch=30.0, fov=60.0)
    assert centre[12:20, 12:20].max() > 0.2  # marker in the middle of the view
    assert centre[:6].max() == 0 and centre[-6:].max() == 0
    away = perspective_view(levels, 32, yaw=-90.0, pitch=30.0, fov=60.0)
    assert away.max() == 0
    # looking straight at the horizon at yaw 0 sees the middle of the map
    grad = np.broadcast_to(np.linspace(0, 1, w, dtype=np.float32)[None, :, None], (h, w, 3))
    view = perspective_view(pyramid(np.ascontiguousarray(grad), 8), 32, 0.0, 0.0, 60.0)
    assert view[16, 16, 0] == pytest.approx(0.5, abs=0.02)
    assert np.all(np.diff(view[16, :, 0]) > 0)  # longitude grows to the right


def test_photo_crop_samples_the_requested_window():
    h, w = 80, 120
    ramp = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :, None], (h, w, 3)).copy()
    out = photo_crop(pyramid(ramp, 8), 16, x0=40.0, y0=10.0, side=32.0)
    assert out.shape == (16, 16, 3)
    # output pixel centres sit at 40 + (i + 0.5) * 2 in edge coordinates -> index 40.5 + 2i
    np.testing.assert_allclose(out[0, :, 0], 40.5 + 2 * np.arange(16), atol=0.6)


def test_curves_map_black_to_black_and_white_to_white():
    h = np.linspace(0, 1, 101, dtype=np.float32)
    for y in (sigmoid_curve(h, 0.9, 0.6), sigmoid_curve(h, 1.2, 0.3), gamma_curve(h, 2.2)):
        assert y[0] == pytest.approx(0.0, abs=1e-6) and y[-1] == pytest.approx(1.0, abs=1e-6)
        assert np.all(np.diff(y) > 0)


def test_colour_jitter_keeps_grey_and_identity_at_zero():
    np.testing.assert_allclose(colour_jitter_matrix(0.0, 1.0), np.eye(3), atol=1e-6)
    m = colour_jitter_matrix(15.0, 0.8)
    np.testing.assert_allclose(m @ np.ones(3), np.ones(3), atol=1e-5)
    assert not np.allclose(m, np.eye(3), atol=1e-3)


def test_exposure_clips_the_requested_fraction():
    scene = np.random.default_rng(1).gamma(1.0, 1.0, (100, 100, 3)).astype(np.float32)
    e = exposure_for_clip_fraction(scene, 0.1)
    assert np.mean((scene * e).max(-1) >= 1.0) == pytest.approx(0.1, abs=0.002)


@pytest.mark.parametrize("clip_range", [(0.05, 0.15), (0.01, 0.02)])
def test_capture_clip_fraction_levels_and_range(clip_range):
    settings = CameraSettings(crop=64, clip_fraction=clip_range)
    scene = sunny_scene(96, 128)
    levels = pyramid(scene, 32)
    for seed in range(12):
        rng = np.random.default_rng(seed)
        x, y = capture(photo_crop(levels, 64, 10.0, 5.0, 80.0), settings, rng)
        assert x.dtype == np.float32 and x.shape == (64, 64, 3) and y.shape == x.shape
        assert x.min() >= 0.0 and x.max() <= 1.0
        np.testing.assert_allclose(x * 255, np.round(x * 255), atol=1e-3)  # 8-bit levels
        frac = clipped_fraction(x)
        assert clip_range[0] - 0.005 <= frac <= clip_range[1] + 0.02, (seed, frac)
        # the sensor saturates where the target is above white, whatever the noise
        assert np.all(x[y.max(-1) >= 1.0].max(-1) == 1.0)
        assert y.min() >= 0.0 and y.max() >= 1.0  # the target keeps values above white


def test_faint_highlight_samples_are_only_a_little_above_white():
    settings = CameraSettings(
        crop=64, faint_probability=1.0, faint_headroom=(1.05, 1.2), noise_max=0.0
    )
    levels = pyramid(sunny_scene(96, 128), 32)
    for seed in range(8):
        x, y = capture(
            photo_crop(levels, 64, 10.0, 5.0, 80.0), settings, np.random.default_rng(seed)
        )
        assert 1.05 - 1e-4 <= y.max() <= 1.2 + 1e-4, (seed, y.max())
        assert x.max() == 1.0  # the brightest pixel still clips
        assert np.all(x[y.max(-1) >= 1.0].max(-1) == 1.0)


def test_faint_probability_mixes_both_exposures():
    settings = CameraSettings(
        crop=64, faint_probability=0.5, clip_fraction=(0.1, 0.1), faint_headroom=(1.0, 1.0)
    )
    scene = sunny_scene(64, 64)
    rng = np.random.default_rng(0)
    peaks = [capture(scene, settings, rng)[1].max() for _ in range(40)]
    faint = sum(abs(p - 1.0) < 1e-4 for p in peaks)
    assert 8 <= faint <= 32  # about half of 40
    assert max(peaks) > 2.0  # the clip-fraction exposures keep the sun far above white


def test_capture_with_jpeg_stays_on_levels():
    settings = CameraSettings(crop=64, jpeg_probability=1.0, jpeg_quality=(30, 40))
    x, _ = capture(sunny_scene(64, 64), settings, np.random.default_rng(0))
    np.testing.assert_allclose(x * 255, np.round(x * 255), atol=1e-3)


def test_settings_refuse_bad_ranges():
    with pytest.raises(ValueError, match="clip fraction"):
        CameraSettings(clip_fraction=(0.2, 0.1))
    with pytest.raises(ValueError, match="curve"):
        CameraSettings(curve="linear")
    with pytest.raises(ValueError, match="faint-highlight probability"):
        CameraSettings(faint_probability=1.5)
    with pytest.raises(ValueError, match="headroom"):
        CameraSettings(faint_headroom=(0.9, 1.2))
    with pytest.raises(ValueError, match="JPEG quality"):
        CameraSettings(jpeg_quality=(0, 100))
    s = CameraSettings(crop=96, fov=(40.0, 60.0))
    assert CameraSettings.from_dict(s.to_dict()) == s


def test_same_seed_same_batch_and_streams_differ():
    scenes = [
        scene_from_array(sunny_scene(64, 128, 0), "pano", crop=64),
        scene_from_array(sunny_scene(80, 96, 1), "photo", crop=64),
    ]
    assert scenes[0].panorama and not scenes[1].panorama
    settings = CameraSettings(crop=64)
    a = SampleSource(scenes, settings, seed=7).batch(3, 4)
    b = SampleSource(scenes, settings, seed=7).batch(3, 4)
    c = SampleSource(scenes, settings, seed=8).batch(3, 4)
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["y"], b["y"])
    assert not np.array_equal(a["x"], c["x"])
    assert not np.array_equal(a["x"], SampleSource(scenes, settings, seed=7).batch(4, 4)["x"])


def test_prefetcher_yields_every_step_in_order_and_passes_errors():
    got = [s for s, _ in Prefetcher(lambda s: {"s": s}, 3, 9)]
    assert got == list(range(3, 9))

    def broken(step):
        raise ValueError(f"bad scene at {step}")

    with pytest.raises(ValueError, match="bad scene at 0"):
        list(Prefetcher(broken, 0, 5))


def test_sanitize_replaces_nonfinite_and_negative_and_refuses_black():
    a = np.ones((4, 4, 3), np.float32)
    a[0, 0] = [np.nan, np.inf, -1.0]
    out = sanitize_linear(a, "x.exr")
    assert np.isfinite(out).all() and out.min() >= 0 and out[0, 0, 1] == 1.0
    assert a[0, 0, 2] == -1.0  # the caller's array is untouched
    assert sanitize_linear(np.ones((4, 4), np.float32), "grey.exr").shape == (4, 4, 3)
    with pytest.raises(TrainingDataError, match="black.exr"):
        sanitize_linear(np.zeros((4, 4, 3), np.float32), "black.exr")


def test_load_scenes_reads_hdr_folders_and_ldr_photos(tmp_path):
    write_exr(tmp_path / "pano.exr", sunny_scene(64, 128))
    write_exr(tmp_path / "photo.exr", sunny_scene(80, 96))
    write_png(tmp_path / "ignored_in_hdr_mode.png", np.full((40, 40, 3), 128, np.uint8))
    scenes = load_scenes(tmp_path, crop=64)
    assert sorted(s.name.rsplit("/", 1)[-1] for s in scenes) == ["pano.exr", "photo.exr"]
    assert [s.panorama for s in sorted(scenes, key=lambda s: s.name)] == [True, False]
    ldr = load_scenes(tmp_path, crop=32, mode="ldr", ldr_linearize="gamma2.2")
    assert len(ldr) == 1
    np.testing.assert_allclose(ldr[0].levels[0], (128 / 255) ** 2.2, rtol=1e-4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingDataError, match="empty"):
        load_scenes(tmp_path / "empty", crop=64)
    with pytest.raises(TrainingDataError, match="no HDR"):
        load_scenes(tmp_path / "ignored_in_hdr_mode.png", crop=64, mode="hdr")
    with pytest.raises(TrainingDataError, match="no such"):
        load_scenes(tmp_path / "missing", crop=64)


def test_camera_compresses_with_the_evaluation_round_trip():
    from napari_hdrcnn import evaluate, io
    from napari_hdrcnn.training import camera

    assert camera.jpeg_round_trip is io.jpeg_round_trip
    assert evaluate.jpeg_round_trip is io.jpeg_round_trip
    assert evaluate.JPEG_SUBSAMPLING == io.ldr.JPEG_SUBSAMPLING == "4:2:0"
