"""What the widget shows: the exposure control on HDR and float layers, the frame of a time
series, and the linearisation and blend choices with the weight file's own shown as such
(a real napari viewer under Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

PLUGIN = "napari-hdrcnn"
WIDGET = "HDR-CNN reconstruction"
RUN_TIMEOUT_MS = 120_000


def open_widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return widget


def test_exposure_moves_the_selected_float_layer(make_napari_viewer, clipped_photo, tmp_path):
    from napari_hdrcnn.io import write_exr

    viewer = make_napari_viewer()
    photo = viewer.add_image(clipped_photo, name="photo", rgb=True)
    hdr = viewer.add_image(
        np.linspace(0, 16, 30 * 40 * 3, dtype=np.float32).reshape(30, 40, 3), name="sun HDR"
    )
    widget = open_widget(viewer)
    assert widget.exposure.enabled and "exposure of 'sun HDR'" in widget.display_info.value
    widget.exposure.value = -3.0
    assert hdr.contrast_limits == pytest.approx((0.0, 8.0))  # 8x the input's white at the top
    assert hdr.gamma == pytest.approx(0.5)
    widget.exposure.value = 2.0
    assert hdr.contrast_limits == pytest.approx((0.0, 0.25))
    widget.exposure.value = -4.0  # beyond the layer's own range (0, 16): the range follows
    assert hdr.contrast_limits == pytest.approx((0.0, 16.0))

    viewer.layers.selection.active = photo  # an 8-bit photo has no exposure to set
    assert not widget.exposure.enabled and widget.display_info.value == ""
    limits = photo.contrast_limits
    widget.exposure.value = -1.0
    assert photo.contrast_limits == limits

    viewer.layers.selection.active = hdr  # the control shows the layer's current exposure
    assert widget.exposure.value == pytest.approx(-4.0)

    # an EXR file opened with the plugin's reader
    path = tmp_path / "scene.exr"
    write_exr(
        path, np.full((20, 30, 3), 0.5, np.float32) * np.arange(1, 31, dtype=np.float32)[:, None]
    )
    [exr] = viewer.open(str(path), plugin=PLUGIN)
    assert viewer.layers.selection.active is exr and widget.exposure.enabled
    widget.exposure.value = -2.0
    assert exr.contrast_limits == pytest.approx((0.0, 4.0))


def test_frame_k_of_t_for_a_time_series(make_napari_viewer, clipped_photo):
    viewer = make_napari_viewer()
    video = viewer.add_image(np.stack([clipped_photo] * 3), name="video", rgb=True)
    widget = open_widget(viewer)
    assert widget.image.value is video
    viewer.dims.set_current_step(0, 0)
    assert widget.display_info.value == "'video': frame 1 of 3"
    viewer.dims.set_current_step(0, 2)
    assert widget.display_info.value == "'video': frame 3 of 3"

    hdr = viewer.add_image(np.ones((3, 72, 100, 3), np.float32) * 2, name="video HDR", rgb=True)
    assert viewer.layers.selection.active is hdr
    assert widget.display_info.value == "exposure of 'video HDR'; 'video HDR': frame 3 of 3"
    viewer.dims.set_current_step(0, 1)
    assert widget.display_info.value.endswith("frame 2 of 3")


def test_linearisation_and_blend_choices(
    make_napari_viewer, qtbot, clipped_photo, small_weights_file, authors_weights_file
):
    from napari_hdrcnn._widget import CHOOSE_FILE, FROM_WEIGHTS, run_options
    from napari_hdrcnn.pixels import linearize

    viewer = make_napari_viewer()
    photo = viewer.add_image(clipped_photo, name="photo", rgb=True)
    widget = open_widget(viewer)
    widget.device.value = "cpu"
    widget.tile.value = "64"
    widget.weights.value = CHOOSE_FILE
    widget.weights_file.value = str(small_weights_file)
    # the weight file's own choices are the defaults, and named as such
    assert widget.linearize.value == FROM_WEIGHTS and widget.blend.value == FROM_WEIGHTS
    assert widget.weight_defaults.value == "from the weights: linearisation gamma2.2, blend max"
    widget.weights_file.value = str(authors_weights_file)
    assert widget.weight_defaults.value == "from the weights: linearisation square, blend max"
    widget.weights_file.value = str(small_weights_file)
    options = run_options(widget.current_settings())
    assert options.linearize is None and options.blend is None  # the weight file decides

    widget.linearize.value = "srgb"
    widget.blend.value = "per-channel"
    options = run_options(widget.current_settings())
    assert options.linearize == "srgb" and options.blend == "per-channel"

    results = []
    widget.reconstructed.connect(results.append)
    widget.image.value = photo
    assert widget.run() is not None
    qtbot.waitUntil(lambda: bool(results), timeout=RUN_TIMEOUT_MS)
    layer = results[0]
    assert layer is not None
    # away from the highlight the output is the input linearised the chosen way
    x = clipped_photo.astype(np.float32) / 255
    far = x.max(axis=-1) < 0.9
    np.testing.assert_allclose(layer.data[far], linearize(x, "srgb")[far], rtol=1e-5, atol=1e-6)
    assert layer.metadata["hdrcnn"]["linearize"] == "srgb"
