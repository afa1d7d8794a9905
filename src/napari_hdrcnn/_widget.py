"""The "HDR-CNN reconstruction" dock widget.

A magicgui form over the reconstruction core. TensorFlow never loads in napari's process (it
crashes napari's software OpenGL): each run is a `_layer_run.LayerRun` in the warm worker
process of `_worker.py`. The input follows the viewer's active layer when the network can take
it. `start_run` is shared with the layer-list command and `reconstruct_layers` (`_commands.py`),
which use the settings of the open widget, or the saved ones.

Settings are remembered in a JSON file, `widget.json` in `$NAPARI_HDRCNN_CONFIG_DIR` or else
platformdirs' `user_config_dir("napari-hdrcnn")`, written at each Run.
"""

from __future__ import annotations

import json
import os
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSlider,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
)
from psygnal import Signal

from ._layer_run import LayerRun, active_run, layer_data, layer_input, layer_refusal
from ._worker import prewarm
from .io.atomic import atomic_write
from .options import DEVICES, ENGINES, SIZINGS, ReconstructOptions, help_text
from .tonemap import DISPLAY_GAMMA, EXPOSURE_RANGE, exposure_limits, exposure_of
from .weights import (
    BLENDS,
    LINEARIZATIONS,
    VIDEO_WEIGHT_NAMES,
    available_weights,
    resolve,
    weight_defaults,
)

if TYPE_CHECKING:
    import napari

CHOOSE_FILE = "choose a file..."
TILE_CHOICES = ("auto", "64", "128", "256", "512", "1024", "2048")
CONFIG_ENV = "NAPARI_HDRCNN_CONFIG_DIR"
SETTINGS_FILE = "widget.json"
DEFAULTS: dict[str, Any] = {
    "weights": "default",
    "weights_file": "",
    "gamma": 1.0,
    "scaling": 1.0,
    "sizing": "native",
    "ref_width": 1024,
    "ref_height": 768,
    "tile": "auto",
    "device": "auto",
    "engine": "auto",
    "blend_mask": False,
    "linearize": "",  # "": what the weight file asks for
    "blend": "",
}
FROM_WEIGHTS = ""


# -- settings ------------------------------------------------------------------------------------
def settings_path() -> Path:
    folder = os.environ.get(CONFIG_ENV)
    if not folder:
        from platformdirs import user_config_dir

        folder = user_config_dir("napari-hdrcnn")
    return Path(folder) / SETTINGS_FILE


def load_settings() -> dict[str, Any]:
    """The remembered settings over the defaults; a missing or broken file gives the defaults."""
    settings = dict(DEFAULTS)
    try:
        stored = json.loads(settings_path().read_text())
    except (OSError, ValueError):
        return settings
    if isinstance(stored, dict):
        for key, default in DEFAULTS.items():
            value = stored.get(key)
            if isinstance(value, type(default)) or (
                isinstance(default, float) and isinstance(value, int)
            ):
                settings[key] = value
    return settings


def save_settings(settings: dict[str, Any]) -> None:
    text = json.dumps({k: settings[k] for k in DEFAULTS if k in settings}, indent=1)
    atomic_write(settings_path(), lambda tmp: Path(tmp).write_text(text))


def installed_weight_names() -> list[str]:
    return [row["name"] for row in available_weights() if row["installed"]]


def weights_source(settings: dict[str, Any]) -> str:
    """The weight name's file, or the chosen file; a missing one is reported right away."""
    if settings["weights"] != CHOOSE_FILE:
        return str(resolve(settings["weights"]))
    path = settings["weights_file"]
    if not path or not Path(path).is_file():
        raise ValueError(f"choose a weight file (.npz); '{path}' is not a file")
    return path


def run_options(settings: dict[str, Any]) -> ReconstructOptions:
    """The settings as reconstruction options (checked: OptionError names a bad one)."""
    options = {
        "gamma": settings["gamma"],
        "scaling": settings["scaling"],
        "sizing": settings["sizing"],
        "tile": None if settings["tile"] == "auto" else int(settings["tile"]),
        "device": settings["device"],
        "engine": settings["engine"],
    }
    if settings["sizing"] == "reference":
        options.update(width=settings["ref_width"], height=settings["ref_height"])
    for method in ("linearize", "blend"):
        if settings[method] != FROM_WEIGHTS:
            options[method] = settings[method]
    return ReconstructOptions(**options)


def start_run(viewer, layers: list, settings: dict[str, Any]) -> LayerRun:
    """Check every layer and the settings, then start a `LayerRun` with them; ValueError (or
    RuntimeError while another run goes) before anything starts."""
    if active_run() is not None:
        raise RuntimeError("a reconstruction is already running; wait for it or cancel it")
    if not layers:
        raise ValueError("choose an input image layer")
    inputs, refusals = [], []
    for layer in layers:
        try:
            inputs.append(layer_input(layer))
        except ValueError as err:
            refusals.append(str(err))
    if refusals:
        raise ValueError("; ".join(refusals))
    run = LayerRun(
        viewer,
        inputs,
        weights_source(settings),
        run_options(settings),
        settings["device"],
        settings["engine"],
        blend_mask_layer=settings["blend_mask"],
        metadata=settings,
    )
    try:
        save_settings(settings)
    except OSError:
        pass  # remembering settings is a convenience, never a reason to fail a run
    run.start()
    return run


_LIVE_WIDGETS: list[weakref.ref] = []


def live_widget() -> HDRCNNWidget | None:
    """The most recently opened widget that is still open, whose settings the layer-list
    command uses."""
    for ref in reversed(_LIVE_WIDGETS):
        widget = ref()
        if widget is not None and not widget._closed:
            return widget
    return None


# -- the widget -----------------------------------------------------------------------------------
class HDRCNNWidget(Container):
    """Reconstruct an HDR image (or each frame of a time series) from the chosen image layer.

    Scripting: set the form's values (`widget.image.value = layer`, `widget.weights.value`,
    `widget.weights_file.value`, `widget.gamma.value`, ...), call `run()`, and connect to
    `reconstructed`, which is emitted with the new HDR layer, or None after a cancel or error.
    """

    reconstructed = Signal(object)

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        self._viewer = napari_viewer
        self._settings = load_settings()
        self._run: LayerRun | None = None
        self._closed = False
        s = self._settings
        weight_choices = installed_weight_names() + [CHOOSE_FILE]
        super().__init__(
            widgets=[
                ComboBox(
                    name="image",
                    label="input image",
                    choices=self._image_layers,
                    tooltip="8/16-bit RGB or grey photo, or float in [0, 1]; (T, Y, X[, 3]) "
                    "is a time series",
                ),
                ComboBox(
                    name="weights",
                    label="weights",
                    choices=weight_choices,
                    value=s["weights"] if s["weights"] in weight_choices else weight_choices[0],
                    tooltip="installed weights (add the authors' with `hdrcnn weights "
                    "download NAME`), or a weight file",
                ),
                FileEdit(
                    name="weights_file",
                    label="weights file",
                    mode="r",
                    filter="*.npz",
                    value=s["weights_file"] or None,
                ),
                FloatSpinBox(
                    name="gamma",
                    label="gamma",
                    min=0.5,
                    max=3.0,
                    step=0.05,
                    value=s["gamma"],
                    tooltip="1.1-1.3 boosts the highlights",
                ),
                FloatSpinBox(
                    name="scaling",
                    label="scaling",
                    min=1.0,
                    max=2.0,
                    step=0.01,
                    value=s["scaling"],
                    tooltip="> 1 pushes near-white pixels into clipping (JPEG noise)",
                ),
                ComboBox(
                    name="sizing",
                    label="sizing",
                    choices=SIZINGS,
                    value=s["sizing"],
                    tooltip="native: any size, no resampling; reference: crop and resize "
                    "to width x height as the authors",
                ),
                SpinBox(
                    name="ref_width",
                    label="width",
                    min=32,
                    max=16384,
                    step=32,
                    value=s["ref_width"],
                ),
                SpinBox(
                    name="ref_height",
                    label="height",
                    min=32,
                    max=16384,
                    step=32,
                    value=s["ref_height"],
                ),
                ComboBox(
                    name="tile",
                    label="tile size",
                    choices=TILE_CHOICES,
                    value=s["tile"] if s["tile"] in TILE_CHOICES else "auto",
                    tooltip="auto picks the largest tile that fits in memory",
                ),
                ComboBox(
                    name="device",
                    label="device",
                    choices=DEVICES,
                    value=s["device"] if s["device"] in DEVICES else "auto",
                ),
                ComboBox(
                    name="engine",
                    label="engine",
                    choices=ENGINES,
                    value=s["engine"] if s["engine"] in ENGINES else "auto",
                    tooltip=help_text("engine"),
                ),
                ComboBox(
                    name="linearize",
                    label="linearisation",
                    choices=self._method_choices("linearize"),
                    value=s["linearize"] if s["linearize"] in LINEARIZATIONS else FROM_WEIGHTS,
                    tooltip="how the input's display values become linear light outside the "
                    "highlights",
                ),
                ComboBox(
                    name="blend",
                    label="blend",
                    choices=self._method_choices("blend"),
                    value=s["blend"] if s["blend"] in BLENDS else FROM_WEIGHTS,
                    tooltip="max: a pixel near white is replaced in all channels; per-channel: "
                    "only its channels near white",
                ),
                Label(name="weight_defaults", value=""),
                CheckBox(
                    name="blend_mask", text="also add the blend mask layer", value=s["blend_mask"]
                ),
                PushButton(name="run_button", text="Run"),
                PushButton(name="cancel_button", text="Cancel", enabled=False),
                Label(name="status", value="ready"),
                FloatSlider(
                    name="exposure",
                    label="exposure (stops)",
                    min=EXPOSURE_RANGE[0],
                    max=EXPOSURE_RANGE[1],
                    step=0.1,
                    value=0.0,
                    enabled=False,
                    tooltip="the selected HDR or float layer's display: 0 puts the input's "
                    "white at the top of the range, -3 shows 8x brighter values",
                ),
                Label(name="display_info", value=""),
            ]
        )
        self.weights.changed.connect(self._update_visibility)
        self.weights.changed.connect(self._show_weight_defaults)
        self.weights_file.changed.connect(self._show_weight_defaults)
        self.exposure.changed.connect(self._apply_exposure)
        self.sizing.changed.connect(self._update_visibility)
        self.image.changed.connect(self._describe_input)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.status.native.setWordWrap(True)  # long messages wrap instead of widening the dock
        layers = napari_viewer.layers
        connections = [
            *[
                (getattr(layers.events, name), self._refresh_layers)
                for name in ("inserted", "removed", "reordered", "renamed")
            ],
            (layers.selection.events.active, self._follow_active),
            (napari_viewer.dims.events.current_step, self._show_display_target),
        ]
        for event, callback in connections:
            event.connect(callback)
        # a closed widget must not be called by the viewer any more
        self.native.destroyed.connect(
            lambda *_, connections=connections: self._disconnect(connections)
        )
        _LIVE_WIDGETS.append(weakref.ref(self))
        self._update_visibility()
        self._show_weight_defaults()
        self._describe_input()
        self._follow_active()
        from ._commands import register_layer_context_menu

        register_layer_context_menu()
        prewarm(self.device.value, self.engine.value)  # loads while the user fills in the form

    def _disconnect(self, connections):
        self._closed = True
        for event, callback in connections:
            event.disconnect(callback)

    # -- form helpers ---------------------------------------------------------------------------
    def _image_layers(self, _widget=None) -> list[tuple[str, Any]]:
        from napari.layers import Image

        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]

    def _refresh_layers(self, *_):
        self.reset_choices()

    def reset_choices(self, *_):
        super().reset_choices()
        self._describe_input()

    def _update_visibility(self, *_):
        self.weights_file.visible = self.weights.value == CHOOSE_FILE
        reference = self.sizing.value == "reference"
        self.ref_width.visible = reference
        self.ref_height.visible = reference

    def _describe_input(self, *_):
        if self.busy or self.get_widget("status") is None:  # running, or still being built
            return
        layer = self.image.value
        text = "ready"
        if layer is not None:
            shape = np.shape(layer.data)
            n = shape[0] if len(shape) == (4 if layer.rgb else 3) else 1
            if n > 1:
                text = (
                    f"ready: time series of {n} frames, reconstructed frame by frame; "
                    f"for video the temporally regularised weights '{VIDEO_WEIGHT_NAMES[0]}' "
                    "flicker less"
                )
        self.status.value = text

    def current_settings(self) -> dict[str, Any]:
        return {
            "weights": self.weights.value,
            "weights_file": str(self.weights_file.value or ""),
            "gamma": float(self.gamma.value),
            "scaling": float(self.scaling.value),
            "sizing": self.sizing.value,
            "ref_width": int(self.ref_width.value),
            "ref_height": int(self.ref_height.value),
            "tile": self.tile.value,
            "device": self.device.value,
            "engine": self.engine.value,
            "blend_mask": bool(self.blend_mask.value),
            "linearize": self.linearize.value,
            "blend": self.blend.value,
        }

    @staticmethod
    def _method_choices(method: str) -> list[tuple[str, str]]:
        """The linearisation or blend choices, the first being the weight file's own."""
        names = LINEARIZATIONS if method == "linearize" else BLENDS
        return [("from the weights", FROM_WEIGHTS)] + [(name, name) for name in names]

    def _show_weight_defaults(self, *_):
        """Say what "from the weights" means for the chosen weight file."""
        try:
            linearize, blend = weight_defaults(weights_source(self.current_settings()))
        except (OSError, ValueError):
            self.weight_defaults.value = "from the weights: (weight file not readable)"
            return
        self.weight_defaults.value = f"from the weights: linearisation {linearize}, blend {blend}"

    def _display_target(self):
        """The layer the exposure control moves: the active layer when it holds floats."""
        from napari.layers import Image

        layer = self._viewer.layers.selection.active
        if isinstance(layer, Image) and np.dtype(layer_data(layer).dtype).kind == "f":
            return layer
        return None

    def _show_display_target(self, *_):
        """Point the exposure control at the active float layer (showing its current exposure)
        and say which frame of a time series is shown."""
        layer = self._display_target()
        self.exposure.enabled = layer is not None
        if layer is not None:
            with self.exposure.changed.blocked():
                self.exposure.value = float(
                    np.clip(exposure_of(layer.contrast_limits), *EXPOSURE_RANGE)
                )
        shown = layer if layer is not None else self.image.value
        parts = [f"exposure of '{layer.name}'"] if layer is not None else []
        if shown is not None and len(layer_data(shown).shape) == (4 if shown.rgb else 3):
            n = layer_data(shown).shape[0]
            k = int(np.clip(round(shown.world_to_data(self._viewer.dims.point)[0]), 0, n - 1))
            parts.append(f"'{shown.name}': frame {k + 1} of {n}")
        self.display_info.value = "; ".join(parts)

    def _apply_exposure(self, stops: float):
        layer = self._display_target()
        if layer is not None:
            layer.contrast_limits_range = (
                min(layer.contrast_limits_range[0], 0.0),
                max(layer.contrast_limits_range[1], exposure_limits(stops)[1]),
            )
            layer.contrast_limits = exposure_limits(stops)
            layer.gamma = DISPLAY_GAMMA

    def _follow_active(self, *_):
        """Take the viewer's active layer as input when the network can take it; otherwise keep
        the current input and say why the active layer was not taken."""
        self._show_display_target()
        layer = self._viewer.layers.selection.active
        if layer is None or self.busy or layer is self.image.value:
            return
        reason = layer_refusal(layer)
        if reason is None:
            if layer not in self.image.choices:
                self.reset_choices()
            self.image.value = layer
            return
        current = self.image.value
        kept = f"input stays '{current.name}'" if current is not None else "no input chosen"
        self.status.value = f"{kept}: the selected layer '{layer.name}' is {reason}"

    @property
    def busy(self) -> bool:
        return self._run is not None and not self._run.done

    @property
    def _process(self):
        """The worker process of the current or last run."""
        return self._run.process if self._run is not None else None

    # -- run / cancel ---------------------------------------------------------------------------
    def run(self, *_):
        """Start a reconstruction of the chosen layer; returns the napari thread worker, or None
        when the form is incomplete (the reason is shown as a notification)."""
        from napari.utils.notifications import show_error

        if self.busy:
            return None
        layer = self.image.value
        try:
            run = start_run(
                self._viewer, [layer] if layer is not None else [], self.current_settings()
            )
        except (ValueError, RuntimeError) as err:
            show_error(f"HDR-CNN: {err}")
            return None
        self._run = run
        run.finished.connect(self._on_finished)
        self._set_running(True, f"running on {run.n_frames} frame(s)...")
        return run.thread_worker

    def cancel(self, *_):
        """Stop the running reconstruction now (ends the worker process); no layer is added."""
        if not self.busy:
            return
        self.status.value = "cancelling..."
        self._run.cancel()

    def _set_running(self, running: bool, text: str):
        self.run_button.enabled = not running
        self.cancel_button.enabled = running
        self.status.value = text

    def _on_finished(self, new_layers: list):
        run = self._run
        if run.cancelled:
            self._set_running(False, "cancelled; ready")
        elif run.error or not new_layers:
            self._set_running(False, "failed; ready")
        else:
            self._set_running(False, f"ready; added '{new_layers[0].name}'")
        self.reconstructed.emit(new_layers[0] if new_layers and not run.cancelled else None)
