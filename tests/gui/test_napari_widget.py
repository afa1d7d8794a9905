"""The HDR-CNN dock widget end to end in a real napari viewer (Xvfb), with small random weights.

TensorFlow never loads in this process (it would crash napari's OpenGL): the widget's worker
process and the reference computation each run in a spawned process.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

pytestmark = pytest.mark.gui

PLUGIN = "napari-hdrcnn"
WIDGET = "HDR-CNN reconstruction"
RUN_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def spawned_pool():
    """A spawned process for the core API, so TensorFlow stays out of the viewer's process."""
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        yield pool


def core_reconstruction(pool, image: np.ndarray, weights: str, **options):
    """A future of the core API's (hdr, mask) for `image`."""
    from napari_hdrcnn import reconstruct

    return pool.submit(reconstruct, image, weights, device="cpu", return_mask=True, **options)


def open_widget(viewer, weights_file, tile="64", blend_mask=False):
    from napari_hdrcnn._widget import CHOOSE_FILE

    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget.device.value = "cpu"
    widget.weights.value = CHOOSE_FILE
    widget.weights_file.value = str(weights_file)
    widget.tile.value = tile
    widget.blend_mask.value = blend_mask
    return widget


def run_and_wait(qtbot, widget):
    results = []
    widget.reconstructed.connect(results.append)
    assert widget.run() is not None
    qtbot.waitUntil(lambda: bool(results), timeout=RUN_TIMEOUT_MS)
    assert not widget.busy and widget.run_button.enabled
    return results[0]


def test_widget_matches_core_and_adds_visible_layer(
    make_napari_viewer, qtbot, clipped_photo, small_weights_file, config_dir, spawned_pool
):
    expected = core_reconstruction(
        spawned_pool,
        clipped_photo,
        str(small_weights_file),
        tile=64,
        gamma=1.2,
        scaling=1.0,
        sizing="native",
    )
    viewer = make_napari_viewer(show=True)
    photo = viewer.add_image(clipped_photo, name="photo", rgb=True)
    before = photo.data.copy()
    widget = open_widget(viewer, small_weights_file, blend_mask=True)
    widget.image.value = photo
    widget.gamma.value = 1.2

    layer = run_and_wait(qtbot, widget)

    assert layer is not None and layer.name == "photo HDR"
    assert layer.data.dtype == np.float32 and layer.rgb
    assert layer.data.shape == clipped_photo.shape
    hdr, mask = expected.result(timeout=RUN_TIMEOUT_MS / 1000)
    np.testing.assert_allclose(layer.data, hdr, rtol=1e-5, atol=1e-6)
    mask_layer = viewer.layers["photo HDR blend mask"]
    np.testing.assert_allclose(mask_layer.data, mask, atol=1e-6)
    assert mask.max() > 0.5  # the photo's highlight is clipped, so the network was used there
    np.testing.assert_array_equal(photo.data, before)  # the input layer is never modified
    lo, hi = layer.contrast_limits
    assert 0 <= lo < hi < float(layer.data.max()) + 1e-6

    # the new layer is visible on screen: not a blank canvas
    photo.visible = False
    mask_layer.visible = False
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].std() > 10, "the HDR layer shows as a flat frame"

    # TensorFlow stayed out of napari's process; the settings were remembered
    assert "tensorflow" not in sys.modules
    saved = json.loads((config_dir / "widget.json").read_text())
    assert saved["gamma"] == pytest.approx(1.2) and saved["tile"] == "64"
    assert saved["weights_file"] == str(small_weights_file) and saved["blend_mask"] is True


def test_settings_are_remembered_by_a_new_widget(make_napari_viewer, config_dir):
    from napari_hdrcnn._widget import DEFAULTS, HDRCNNWidget, save_settings

    save_settings(
        {
            **DEFAULTS,
            "gamma": 1.3,
            "scaling": 1.1,
            "tile": "128",
            "device": "cpu",
            "sizing": "reference",
            "ref_width": 512,
        }
    )
    viewer = make_napari_viewer()
    widget = HDRCNNWidget(viewer)
    assert widget.gamma.value == pytest.approx(1.3)
    assert widget.scaling.value == pytest.approx(1.1)
    assert widget.tile.value == "128" and widget.device.value == "cpu"
    assert widget.sizing.value == "reference" and widget.ref_width.value == 512
    (config_dir / "widget.json").write_text("{ not json")  # a broken file gives the defaults
    assert HDRCNNWidget(viewer).gamma.value == pytest.approx(DEFAULTS["gamma"])


def test_time_series_gives_one_frame_per_input_frame(
    make_napari_viewer, qtbot, clipped_photo, small_weights_file
):
    viewer = make_napari_viewer()
    frames = np.stack([clipped_photo, clipped_photo, clipped_photo[::-1]])
    video = viewer.add_image(frames, name="video", rgb=True)
    widget = open_widget(viewer, small_weights_file)
    widget.image.value = video
    assert "time series of 3 frames" in widget.status.value
    # the video weights weights.py suggests first (the shipped regularised model)
    assert "'default-compr-regularized'" in widget.status.value

    layer = run_and_wait(qtbot, widget)

    assert layer.data.shape == frames.shape and layer.data.dtype == np.float32
    # each frame is its own reconstruction: equal inputs, equal outputs; another input differs
    np.testing.assert_array_equal(layer.data[1], layer.data[0])
    assert not np.allclose(layer.data[2], layer.data[0])


def test_errors_become_notifications_and_the_widget_returns_to_ready(
    make_napari_viewer, qtbot, tmp_path, small_weights_file
):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    widget = open_widget(viewer, small_weights_file)
    widget.image.value = viewer.add_image(
        np.full((40, 40, 3), 3.0, np.float32), name="hdr", rgb=True
    )
    n_before = len(notification_manager.records)
    assert widget.run() is None  # refused before anything runs: float input beyond [0, 1]
    assert "in [0, 1]" in str(notification_manager.records[-1].message)
    assert len(notification_manager.records) == n_before + 1

    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a weight file")
    widget.weights_file.value = str(broken)
    widget.image.value = viewer.add_image(np.zeros((40, 40), np.uint8), name="grey")
    assert run_and_wait(qtbot, widget) is None  # the worker's error
    assert "broken.npz" in str(notification_manager.records[-1].message)
    assert widget.status.value.endswith("ready")
    assert [lay.name for lay in viewer.layers] == ["hdr", "grey"]


def test_grey_input_gives_grey_output(make_napari_viewer, qtbot, clipped_photo, small_weights_file):
    viewer = make_napari_viewer()
    grey = clipped_photo[..., 1]
    widget = open_widget(viewer, small_weights_file)
    widget.image.value = viewer.add_image(grey, name="grey")
    layer = run_and_wait(qtbot, widget)
    assert layer.data.shape == grey.shape and not layer.rgb


def test_reference_sizing_gives_the_requested_size(
    make_napari_viewer, qtbot, clipped_photo, small_weights_file
):
    viewer = make_napari_viewer()
    widget = open_widget(viewer, small_weights_file)
    widget.image.value = viewer.add_image(clipped_photo, name="photo", rgb=True)
    widget.sizing.value = "reference"
    assert not widget.ref_width.native.isHidden()  # shown only for reference sizing
    widget.ref_width.value, widget.ref_height.value = 96, 64
    layer = run_and_wait(qtbot, widget)
    assert layer.data.shape == (64, 96, 3)


# Last in the module: it ends the warm worker the other tests share.
def test_cancel_leaves_no_layer_and_no_process(make_napari_viewer, qtbot, small_weights_file):
    from napari_hdrcnn._worker import Done, Progress

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    big = (rng.random((640, 640, 3)) * 255).astype(np.uint8)  # hundreds of 64-pixel tiles
    layer = viewer.add_image(big, name="big", rgb=True)
    widget = open_widget(viewer, small_weights_file)
    widget.image.value = layer
    messages, results = [], []
    widget.reconstructed.connect(results.append)

    worker = widget.run()
    worker.yielded.connect(messages.append)
    qtbot.waitUntil(
        lambda: any(isinstance(m, Progress) and m.tiles_done >= 1 for m in messages),
        timeout=RUN_TIMEOUT_MS,
    )
    process = widget._process
    pid = process.pid
    widget.cancel()
    qtbot.waitUntil(lambda: bool(results), timeout=30_000)

    assert results == [None]
    assert [lay.name for lay in viewer.layers] == ["big"]
    assert "cancelled" in widget.status.value and widget.run_button.enabled
    assert not any(isinstance(m, Done) for m in messages)  # it stopped in the middle
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # ended and reaped: no stray process

    # the next run starts a fresh worker and works
    widget.image.value = viewer.add_image(big[:64, :96], name="small", rgb=True)
    assert run_and_wait(qtbot, widget).name == "small HDR"
    assert widget._process.pid != pid
