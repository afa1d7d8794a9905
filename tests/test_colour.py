"""colour: the Rec. 709 luminance weights every module uses."""

from __future__ import annotations

import numpy as np

from napari_hdrcnn import colour, metrics
from napari_hdrcnn.io import exr


def test_rec709_weights_are_one_fact():
    assert colour.REC709_LUMINANCE == (0.2126, 0.7152, 0.0722)
    assert sum(colour.REC709_LUMINANCE) == 1.0
    assert colour.LUMINANCE_WEIGHTS.dtype == np.float32
    np.testing.assert_array_equal(colour.LUMINANCE_WEIGHTS, np.float32(colour.REC709_LUMINANCE))
    assert exr._luminance_weights(None) == colour.REC709_LUMINANCE
    rgb = np.eye(3, dtype=np.float64)
    np.testing.assert_array_equal(
        metrics.luminance(rgb), colour.LUMINANCE_WEIGHTS.astype(np.float64)
    )
