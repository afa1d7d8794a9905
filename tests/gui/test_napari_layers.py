"""The selected layers: the widget follows the selection, the layer-list command and
`reconstruct_layers` (a real napari viewer under Xvfb, small random weights)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytestmark = pytest.mark.gui

PLUGIN = "napari-hdrcnn"
WIDGET = "HDR-CNN reconstruction"
RUN_TIMEOUT_MS = 120_000


@pytest.fixture
def saved_settings(small_weights_file):
    """Saved settings naming the small random weights: what the command uses with no widget."""
    from napari_hdrcnn._widget import CHOOSE_FILE, DEFAULTS, save_settings

    settings = {
        **DEFAULTS,
        "weights": CHOOSE_FILE,
        "weights_file": str(small_weights_file),
        "tile": "64",
        "device": "cpu",
    }
    save_settings(settings)
    return settings


def open_widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return widget


def test_widget_input_follows_the_selection(make_napari_viewer, clipped_photo):
    viewer = make_napari_viewer()
    photo = viewer.add_image(clipped_photo, name="photo", rgb=True)
    grey = viewer.add_image(clipped_photo[..., 0], name="grey")
    video = viewer.add_image(np.stack([clipped_photo] * 2), name="video", rgb=True)
    unit = viewer.add_image(clipped_photo.astype(np.float32) / 255, name="unit float", rgb=True)
    widget = open_widget(viewer)
    assert widget.image.value is unit  # the active layer when the widget opened

    for layer in (photo, video, grey, unit):
        viewer.layers.selection.active = layer
        assert widget.image.value is layer
    assert "time series" not in widget.status.value

    hdr = viewer.add_image(np.full((30, 40, 3), 4.0, np.float32), name="sun HDR", rgb=True)
    assert viewer.layers.selection.active is hdr
    assert widget.image.value is unit  # kept
    assert widget.status.value == (
        "input stays 'unit float': the selected layer 'sun HDR' is an HDR float layer "
        "(values up to 4, not in [0, 1]): already HDR"
    )
    labels = viewer.add_labels(np.zeros((30, 40), np.int32), name="cells")
    assert widget.image.value is unit
    assert "'cells' is a labels layer, not an image" in widget.status.value

    widget.image.value = photo  # choosing by hand still works
    assert widget.image.value is photo
    viewer.layers.selection.active = video
    assert widget.image.value is video
    assert "time series of 2 frames" in widget.status.value
    del labels


def test_context_menu_command_is_registered_and_enabled_for_images_only(
    make_napari_viewer, clipped_photo
):
    import yaml
    from app_model.backends.qt import QModelMenu
    from napari._app_model import get_app_model
    from napari._app_model.context import get_context

    from napari_hdrcnn._commands import COMMAND_ID, CONTEXT_MENU, CONTEXT_TITLE, ENABLEMENT

    viewer = make_napari_viewer()
    photo = viewer.add_image(clipped_photo, name="photo", rgb=True)
    grey = viewer.add_image(clipped_photo[..., 0], name="grey")
    labels = viewer.add_labels(np.zeros((72, 100), np.int32), name="cells")
    wide = viewer.add_image(np.zeros((72, 100), np.int32), name="int32")
    viewer.open_sample(PLUGIN, "clipped_ldr_photo")  # any use of the plugin adds the item

    from napari_hdrcnn import _commands

    manifest = yaml.safe_load(open(_commands.__file__.replace("_commands.py", "napari.yaml")))
    command = next(c for c in manifest["contributions"]["commands"] if c["id"] == COMMAND_ID)
    assert command["enablement"] == ENABLEMENT
    filter_menu = manifest["contributions"]["menus"]["napari/layers/filter"]
    assert {"command": COMMAND_ID} in filter_menu

    app = get_app_model()
    menu = QModelMenu(CONTEXT_MENU, app=app)
    action = next(a for a in menu.actions() if a.text() == CONTEXT_TITLE)

    def enabled_for(*layers) -> bool:
        viewer.layers.selection.active = layers[0]  # selects only it
        viewer.layers.selection.update(layers)
        menu.update_from_context(get_context(viewer.layers))
        return action.isEnabled()

    assert enabled_for(photo)
    assert enabled_for(photo, grey)
    assert not enabled_for(labels)
    assert not enabled_for(photo, labels)
    assert not enabled_for(wide)
    viewer.layers.selection.clear()
    menu.update_from_context(get_context(viewer.layers))
    assert not action.isEnabled()

    # also in Layers > Filter
    filter_ids = [item.command.id for item in app.menus.get_menu("napari/layers/filter")]
    assert COMMAND_ID in filter_ids


def test_command_on_two_selected_layers_gives_two_hdr_layers(
    make_napari_viewer, qtbot, clipped_photo, saved_settings
):
    from napari._app_model import get_app_model

    from napari_hdrcnn._commands import COMMAND_ID
    from napari_hdrcnn._layer_run import active_run

    viewer = make_napari_viewer()
    photo = viewer.add_image(clipped_photo, name="photo", rgb=True)
    grey = viewer.add_image(clipped_photo[..., 1], name="grey")
    viewer.add_image(clipped_photo[::-1], name="not selected", rgb=True)
    viewer.layers.selection = {photo, grey}
    before = photo.data.copy()

    # as the menu does it: through napari's app model, which passes the viewer in
    get_app_model().commands.execute_command(COMMAND_ID).result()
    run = active_run()
    assert run is not None, "the command started no run (see the notifications)"
    layers = []
    run.finished.connect(layers.extend)
    qtbot.waitUntil(lambda: run.done, timeout=RUN_TIMEOUT_MS)

    assert [layer.name for layer in layers] == ["photo HDR", "grey HDR"]
    assert layers[0].rgb and layers[0].data.shape == clipped_photo.shape
    assert not layers[1].rgb and layers[1].data.shape == clipped_photo.shape[:2]
    assert [layer.name for layer in viewer.layers] == [
        "photo",
        "grey",
        "not selected",
        "photo HDR",
        "grey HDR",
    ]
    assert layers[0].metadata["hdrcnn"]["weights_file"] == saved_settings["weights_file"]
    np.testing.assert_array_equal(photo.data, before)
    assert "tensorflow" not in sys.modules


def test_command_refuses_an_hdr_layer_before_running(
    make_napari_viewer, clipped_photo, saved_settings
):
    from napari.utils.notifications import notification_manager

    from napari_hdrcnn._commands import reconstruct_selected
    from napari_hdrcnn._layer_run import active_run

    viewer = make_napari_viewer()
    photo = viewer.add_image(clipped_photo, name="photo", rgb=True)
    hdr = viewer.add_image(np.full((30, 40, 3), 3.0, np.float32), name="hdr", rgb=True)
    viewer.layers.selection = {photo, hdr}
    reconstruct_selected(viewer)
    assert active_run() is None
    message = str(notification_manager.records[-1].message)
    assert "layer 'hdr' is an HDR float layer" in message and "already HDR" in message
    assert [layer.name for layer in viewer.layers] == ["photo", "hdr"]


def test_reconstruct_layers_returns_new_layers_and_keeps_the_ui_live(
    make_napari_viewer, qtbot, clipped_photo, small_weights_file, config_dir
):
    from qtpy.QtCore import QTimer

    import napari_hdrcnn

    viewer = make_napari_viewer()
    photo = viewer.add_image(clipped_photo, name="photo", rgb=True)
    small = viewer.add_image(clipped_photo[:40, :64], name="small", rgb=True)
    from napari_hdrcnn._layer_run import active_run

    seen_running = []  # the event loop runs this while reconstruct_layers waits
    QTimer.singleShot(0, lambda: seen_running.append(active_run() is not None))
    layers = napari_hdrcnn.reconstruct_layers(
        viewer, [small, photo], weights=str(small_weights_file), tile=64, device="cpu"
    )
    assert seen_running == [True], "the Qt event loop did not run while reconstruct_layers waited"
    assert [layer.name for layer in layers] == ["small HDR", "photo HDR"]
    assert layers[1].data.shape == clipped_photo.shape

    with pytest.raises(TypeError, match="unknown option.*gama"):
        napari_hdrcnn.reconstruct_layers(viewer, [photo], gama=1.2)
    with pytest.raises(ValueError, match="gamma must be a positive number"):
        napari_hdrcnn.reconstruct_layers(viewer, [photo], gamma=-1)
    with pytest.raises(ValueError, match="no-such.npz"):
        napari_hdrcnn.reconstruct_layers(viewer, [photo], weights="no-such.npz")
    assert len(viewer.layers) == 4


# Last in the module: it ends the warm worker the other tests share.
def test_cancel_mid_way_adds_nothing_for_the_unfinished_layer(
    make_napari_viewer, qtbot, clipped_photo, saved_settings
):
    from napari.utils.progress import progress

    import napari_hdrcnn
    from napari_hdrcnn._layer_run import NextLayer
    from napari_hdrcnn._worker import Done, Progress

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    first = viewer.add_image(clipped_photo, name="first", rgb=True)
    big = (rng.random((640, 640, 3)) * 255).astype(np.uint8)  # hundreds of 64-pixel tiles
    second = viewer.add_image(big, name="second", rgb=True)
    messages = []
    run = napari_hdrcnn.reconstruct_layers(viewer, [first, second], wait=False)
    run.thread_worker.yielded.connect(messages.append)
    qtbot.waitUntil(
        lambda: (
            len(run.new_layers) == 1
            and any(
                isinstance(m, Progress) and m.tiles_done >= 1
                for m in messages[messages.index(NextLayer(1)) :]
            )
            if NextLayer(1) in messages
            else False
        ),
        timeout=RUN_TIMEOUT_MS,
    )
    # the Cancel button of the frames bar in the activity dock
    bar = next(p for p in progress._all_instances if p.desc == "HDR-CNN frames")
    bar.cancel()
    qtbot.waitUntil(lambda: run.done, timeout=30_000)

    assert run.cancelled and run.error is None
    assert [layer.name for layer in viewer.layers] == ["first", "second", "first HDR"]
    second_job = messages[messages.index(NextLayer(1)) :]
    assert not any(isinstance(m, Done) for m in second_job)  # it stopped in the middle
