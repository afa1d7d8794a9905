"""The comparison figure of a test input: one row per method, input | reconstruction |
reference | PU21 error map, all at one exposure (Pillow)."""

from __future__ import annotations

import numpy as np

from .. import metrics
from ..metrics import ldr_linear
from .protocol import CAMERA_GAMMA, InputCase

FIGURE_STOPS = -2.0  # figure exposure relative to the test camera's
FIGURE_PANEL_WIDTH = 320
ERROR_MAP_MAX_PU = 64.0


_RAMP = np.array(
    [[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]], np.float32
)  # dark to light, magma-like


def colour_ramp(t: np.ndarray) -> np.ndarray:
    """Map [0, 1] to a dark-to-light colour ramp, uint8 (..., 3)."""
    t = np.clip(np.nan_to_num(t), 0.0, 1.0) * (len(_RAMP) - 1)
    i = np.minimum(t.astype(np.int32), len(_RAMP) - 2)
    f = (t - i)[..., None]
    return (_RAMP[i] * (1 - f) + _RAMP[i + 1] * f + 0.5).astype(np.uint8)


def display(image: np.ndarray, scale: float) -> np.ndarray:
    """Linear image -> 8-bit display: clip(scale * x, 0, 1) ** (1 / 2.2)."""
    with np.errstate(over="ignore"):
        x = np.clip(np.asarray(image, np.float32) * np.float32(scale), 0.0, 1.0)
    return (np.power(x, np.float32(1 / CAMERA_GAMMA)) * 255.0 + 0.5).astype(np.uint8)


def _panel(pixels: np.ndarray, title: str, width: int):
    from PIL import Image, ImageDraw

    im = Image.fromarray(pixels)
    if im.width > width:
        im = im.resize((width, max(1, round(im.height * width / im.width))), Image.BOX)
    header = 14
    out = Image.new("RGB", (im.width, im.height + header), (255, 255, 255))
    out.paste(im, (0, header))
    ImageDraw.Draw(out).text((2, 1), title, fill=(0, 0, 0))
    return out


def comparison_figure(
    test: InputCase,
    reference: np.ndarray,
    scorer: metrics.ScoringReference,
    rows: list[tuple[str, np.ndarray, float]],
    display_scale: float,
) -> np.ndarray:
    """One row per method: input | reconstruction | reference | error map, all at one exposure.

    rows: (label, prediction, alignment gain); images are shown in the reference's scale times
    `display_scale`; the error map is |PU21 luminance difference| after alignment.
    """
    from PIL import Image

    gain_in = metrics.alignment_gain(ldr_linear(test.ldr), reference, test.ldr)
    shown_in = display(ldr_linear(test.ldr), display_scale * gain_in)
    shown_ref = display(reference, display_scale)
    panels = []
    for label, pred, gain in rows:
        pred_y = np.clip(
            metrics.luminance(metrics.to_absolute(pred, gain * scorer.scale)),
            metrics.L_MIN,
            metrics.L_MAX,
        )
        err = np.abs(metrics.pu21_encode(pred_y) - scorer.pu_y) / ERROR_MAP_MAX_PU
        panels.append(
            [
                _panel(shown_in, f"input, clip {test.clip}", FIGURE_PANEL_WIDTH),
                _panel(display(pred, display_scale * gain), label, FIGURE_PANEL_WIDTH),
                _panel(shown_ref, "reference", FIGURE_PANEL_WIDTH),
                _panel(colour_ramp(err), f"|dPU21| 0-{ERROR_MAP_MAX_PU:g}", FIGURE_PANEL_WIDTH),
            ]
        )
    pw, ph, gap = panels[0][0].width, panels[0][0].height, 4
    sheet = Image.new(
        "RGB", (4 * pw + 3 * gap, len(panels) * ph + (len(panels) - 1) * gap), (255, 255, 255)
    )
    for r, row in enumerate(panels):
        for c, p in enumerate(row):
            sheet.paste(p, (c * (pw + gap), r * (ph + gap)))
    return np.asarray(sheet)
