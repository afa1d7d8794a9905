"""Sample data for the napari plugin: a clipped 8-bit photo to try the widget on.

No reference HDR is offered: the photo comes from the authors' example inputs, which were
published without the HDR scenes they were taken from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent / "data"
CLIPPED_PHOTO = DATA_DIR / "sample_clipped_sunset.png"
CLIPPED_PHOTO_DESCRIPTION = (
    "8-bit sunset over snow with the sun and sky blown out (about 7 % of the pixels at 255); "
    "448x336, downscaled from img_007 of the HDR-CNN release's example inputs (BSD-3-Clause, "
    "Copyright (c) 2017 Gabriel Eilertsen; see data/LICENSE-samples). No reference HDR exists "
    "for this photo, so there is none to compare with."
)


def clipped_photo_pixels() -> np.ndarray:
    """The sample photo as uint8 (H, W, 3)."""
    from PIL import Image

    with Image.open(CLIPPED_PHOTO) as im:
        return np.asarray(im.convert("RGB"))


def clipped_ldr_photo() -> list[tuple]:
    """npe2 sample-data command: one RGB image layer."""
    from ._commands import register_layer_context_menu

    register_layer_context_menu()  # napari imports the plugin only when it is used
    return [
        (
            clipped_photo_pixels(),
            {
                "name": "Clipped LDR photo",
                "rgb": True,
                "metadata": {
                    "description": CLIPPED_PHOTO_DESCRIPTION,
                    "source": CLIPPED_PHOTO.name,
                },
            },
            "image",
        )
    ]
