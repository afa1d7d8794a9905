"""Reconstructing the selected layers without the dock widget: the layer-list command
"Reconstruct HDR (HDR-CNN)" (right-click menu and Layers > Filter) and, for scripts,
`reconstruct_layers`. Both take the open widget's settings, or the saved ones when no widget is
open, and run through the same `LayerRun` as the widget.
"""

from __future__ import annotations

from typing import Any

from napari.viewer import Viewer  # the annotation napari injects the viewer by

from ._layer_run import LayerRun
from ._widget import CHOOSE_FILE, DEFAULTS, TILE_CHOICES, live_widget, load_settings, start_run
from .options import DEVICES, ENGINES, SIZINGS

COMMAND_ID = "napari-hdrcnn.reconstruct_selected"
CONTEXT_MENU = "napari/layers/context"
CONTEXT_TITLE = "Reconstruct HDR (HDR-CNN)"
# What napari's layer-list context keys can tell: every selected layer an image and, for one
# selected layer, a pixel type the network takes and one image or a time series (napari has no
# active layer, so no dtype key, when several are selected). The keys cannot see a float
# layer's range or the types of several layers: the command checks every layer in full before
# it runs. The same expression is the command's `enablement` in napari.yaml (a test checks it).
ENABLEMENT = (
    "all_selected_layers_image and (num_selected_layers > 1 or active_layer_ndim <= 3 and "
    "(active_layer_dtype == 'uint8' or active_layer_dtype == 'uint16' or "
    "active_layer_dtype == 'float16' or active_layer_dtype == 'float32' or "
    "active_layer_dtype == 'float64'))"
)


# -- options --------------------------------------------------------------------------------------
def settings_with(options: dict[str, Any]) -> dict[str, Any]:
    """The open widget's settings (or the saved ones) with `options` over them; a bad option
    raises before anything runs."""
    widget = live_widget()
    settings = widget.current_settings() if widget is not None else load_settings()
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    for key, value in options.items():
        if key == "tile":
            value = str(value)
            if value not in TILE_CHOICES:
                raise ValueError(f"tile must be one of {', '.join(TILE_CHOICES)}, got {value}")
        elif key in ("weights", "weights_file"):
            value = str(value)
        elif key in ("gamma", "scaling"):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{key} must be a positive number, got {value!r}")
            value = float(value)
        elif key in ("ref_width", "ref_height"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 32:
                raise ValueError(f"{key} must be an integer of at least 32, got {value!r}")
        elif key == "sizing" and value not in SIZINGS:
            raise ValueError(f"sizing must be one of {', '.join(SIZINGS)}, got {value!r}")
        elif key == "device" and value not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {value!r}")
        elif key == "engine" and value not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {value!r}")
        elif key == "blend_mask":
            value = bool(value)
        settings[key] = value
    if "weights_file" in options and "weights" not in options:
        settings["weights"] = CHOOSE_FILE
    return settings


def selected_layers(viewer) -> list:
    """The selected layers in the layer list's order (the selection itself is a set)."""
    return [layer for layer in viewer.layers if layer in viewer.layers.selection]


# -- scripts --------------------------------------------------------------------------------------
def reconstruct_layers(viewer, layers=None, *, wait: bool = True, **options) -> Any:
    """Reconstruct `layers` (default: the selected ones) one after the other and add a
    "<name> HDR" layer for each; returns the new layers.

    Options are the widget's settings (`weights` a name or a file, `gamma`, `scaling`, `sizing`,
    `ref_width`, `ref_height`, `tile`, `device`, `engine`, `linearize`, `blend`,
    `blend_mask`), over the open widget's values or
    the saved ones. The work runs in the warm worker process and the Qt event loop keeps
    running while this waits (the viewer stays live); `wait=False` returns the `LayerRun` at
    once instead (its `finished` signal gives the new layers). A bad option or layer raises
    before anything runs; a failure of the run raises RuntimeError; after a Cancel (in the
    activity dock) the layers finished before it are returned.
    """
    settings = settings_with(options)
    chosen = selected_layers(viewer) if layers is None else list(layers)
    run = start_run(viewer, chosen, settings)
    if not wait:
        return run
    return wait_for(run)


def wait_for(run: LayerRun) -> list:
    """Run a local Qt event loop until `run` ends; its new layers, or RuntimeError."""
    from qtpy.QtCore import QEventLoop

    if not run.done:
        loop = QEventLoop()
        run.finished.connect(lambda _: loop.quit())
        if not run.done:  # it cannot end in between (both on the UI thread), but be sure
            loop.exec()
    if run.error:
        raise RuntimeError(f"HDR-CNN: {run.error}")
    return list(run.new_layers)


# -- the layer-list command ------------------------------------------------------------------------
def reconstruct_selected(viewer: Viewer) -> None:
    """The "Reconstruct HDR" command: start a run on the selected layers and return at once;
    a refusal becomes a notification."""
    from napari.utils.notifications import show_error

    register_layer_context_menu()
    try:
        start_run(viewer, selected_layers(viewer), settings_with({}))
    except (ValueError, RuntimeError) as err:
        show_error(f"HDR-CNN: {err}")


def register_layer_context_menu() -> None:
    """Put the command in napari's layer-list context menu (once per napari application).

    napari 0.9 ignores plugin manifests' contributions to `napari/layers/context` (it is not in
    its list of menus plugins may extend), so the plugin adds its item itself the first time
    napari imports its widget, sample or reader.
    """
    from app_model.expressions import parse_expression
    from app_model.types import CommandRule, MenuItem
    from napari._app_model import get_app_model  # napari's documented way to its app model

    app = get_app_model()
    if any(
        isinstance(item, MenuItem) and item.command.id == COMMAND_ID
        for item in app.menus.get_menu(CONTEXT_MENU)
    ):
        return
    rule = CommandRule(id=COMMAND_ID, title=CONTEXT_TITLE, enablement=parse_expression(ENABLEMENT))
    app.menus.append_menu_items([(CONTEXT_MENU, MenuItem(command=rule, group="8_hdrcnn"))])
