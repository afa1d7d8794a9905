"""Colour facts shared by the readers, the metrics and the virtual camera."""

from __future__ import annotations

import numpy as np

# Rec. 709 / sRGB primaries, D65 white: Y = 0.2126 R + 0.7152 G + 0.0722 B
REC709_LUMINANCE = (0.2126, 0.7152, 0.0722)
# The same weights as float32, as the metrics and the camera have always computed with them
# (widening these to float64 keeps the float32 rounding, so published figures stay as they are).
LUMINANCE_WEIGHTS = np.array(REC709_LUMINANCE, np.float32)

__all__ = ["LUMINANCE_WEIGHTS", "REC709_LUMINANCE"]
