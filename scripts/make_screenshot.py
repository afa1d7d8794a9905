"""Make docs/screenshot.png: the HDR-CNN widget at work in a real napari viewer.

The sample photo as shot, then (napari's grid mode) the photo and its reconstruction at the
same exposure (--stops, default -3, set with the widget's exposure control): the photo as the
network linearises it, where the clipped sun is a flat patch, and the HDR layer, where the
reconstructed highlight shows its shape.

Run under a display (or `xvfb-run -a python scripts/make_screenshot.py`). Uses the default
weights when the package ships them; otherwise a tiny random network, and the picture's title
says so, because its output is then a demonstration of the plugin, not of HDR reconstruction.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RANDOM_WIDTH_FACTOR = 0.0625


def write_random_weights(
    path: str | Path, width_factor: float = RANDOM_WIDTH_FACTOR, seed: int = 0
) -> Path:
    """A small untrained network (random normal kernels, identity batch norm), no TensorFlow."""
    from napari_hdrcnn.architecture import tensor_specs
    from napari_hdrcnn.weights import Weights, write_weights

    rng = np.random.default_rng(seed)
    tensors = []
    for spec in tensor_specs(width_factor):
        if spec.name.endswith(("moving_variance", "bn/gamma")):
            t = np.ones(spec.shape, np.float32)
        elif spec.name.endswith(("moving_mean", "bn/beta", "/b")):
            t = np.zeros(spec.shape, np.float32)
        else:  # He-like scale keeps activations bounded through the 30-odd layers
            fan_in = int(np.prod(spec.shape[:-1])) if len(spec.shape) == 4 else 1
            t = (rng.standard_normal(spec.shape) * np.sqrt(1.0 / max(fan_in, 1))).astype(np.float32)
        tensors.append(t)
    write_weights(
        Weights(tensors, width_factor=width_factor, linearize="gamma2.2", source="random"),
        path,
        note="random weights for tests and demos",
    )
    return Path(path)


def wait_for(widget, timeout_s: float) -> object:
    """Run the Qt event loop until the widget reports its result."""
    import time

    from qtpy.QtWidgets import QApplication

    results = []
    widget.reconstructed.connect(results.append)
    if widget.run() is None:
        raise SystemExit("the widget refused to run (see the notification above)")
    deadline = time.monotonic() + timeout_s
    while not results and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    if not results or results[0] is None:
        raise SystemExit("the reconstruction did not finish")
    return results[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(REPO / "docs" / "screenshot.png"))
    parser.add_argument(
        "--weights",
        default=None,
        help="a weight name or file; default: 'default' if installed, else a "
        "tiny random network (labelled as such in the picture)",
    )
    parser.add_argument("--size", type=int, nargs=2, default=(1600, 860), metavar=("W", "H"))
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--stops", type=float, default=-3.0, help="exposure of both panels")
    args = parser.parse_args(argv)

    import tempfile

    import napari

    from napari_hdrcnn._widget import CHOOSE_FILE, installed_weight_names
    from napari_hdrcnn._worker import stop_shared_processes
    from napari_hdrcnn.io import write_png
    from napari_hdrcnn.reconstruct import as_unit_rgb, linearize_pixels
    from napari_hdrcnn.weights import weight_defaults

    viewer = napari.Viewer(title="napari-hdrcnn", show=True)
    viewer.window.resize(*args.size)
    viewer.open_sample("napari-hdrcnn", "clipped_ldr_photo")
    photo = viewer.layers[-1]
    _, widget = viewer.window.add_plugin_dock_widget("napari-hdrcnn", "HDR-CNN reconstruction")
    widget.image.value = photo

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or ("default" if "default" in installed_weight_names() else None)
        if weights is None:
            weights = str(write_random_weights(Path(tmp) / "random_demo_weights.npz"))
            label = (
                "Untrained random network (no default model shipped yet):\n"
                "this shows the plugin, not HDR reconstruction quality"
            )
        else:
            label = f"HDR-CNN weights: {Path(weights).name}"
        if weights in installed_weight_names():
            widget.weights.value = weights
        else:
            widget.weights.value = CHOOSE_FILE
            widget.weights_file.value = weights
        try:
            hdr_layer = wait_for(widget, args.timeout)
        finally:
            stop_shared_processes()

    # the input at the same exposure: linear as the network sees it outside the highlights
    linearize = widget.linearize.value or weight_defaults(weights)[0]
    linear_input = viewer.add_image(
        linearize_pixels(as_unit_rgb(photo.data)[0], linearize),
        name=f"{photo.name}, linear",
        rgb=True,
    )
    viewer.layers.move(viewer.layers.index(linear_input), viewer.layers.index(hdr_layer))
    for layer in (linear_input, hdr_layer):  # through the widget's exposure control
        viewer.layers.selection.active = layer
        widget.exposure.value = args.stops
    widget.image.value = photo  # the widget's input, as a user would leave it
    viewer.grid.enabled = True
    viewer.grid.stride = 1
    viewer.text_overlay.visible = True
    viewer.text_overlay.text = (
        f"top left: the photo as shot\ntop right: the photo (linear) at {args.stops:g} stops\n"
        f"bottom: the HDR-CNN output at {args.stops:g} stops\n{label}"
    )
    viewer.text_overlay.font_size = 10
    viewer.text_overlay.color = "yellow"
    viewer.text_overlay.position = "bottom_left"
    viewer.reset_view()
    from qtpy.QtWidgets import QApplication

    for _ in range(20):  # let the canvas draw the overlay before the picture is taken
        QApplication.processEvents()
    shot = viewer.screenshot(canvas_only=False, flash=False)
    write_png(args.output, shot[..., :3].copy())
    print(f"wrote {args.output} ({shot.shape[1]}x{shot.shape[0]}); {label}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
