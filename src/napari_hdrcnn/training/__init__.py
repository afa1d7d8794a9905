"""Training HDR-CNN weights: `hdrcnn train` and its parts.

- `camera`: the virtual camera (numpy): panorama views / photo crops, clip-fraction exposure,
  camera curves, colour jitter, noise, 8-bit quantisation, JPEG.
- `data`: scenes decoded once and kept in memory, deterministic batches, prefetching.
- `losses`: masked log-domain losses and temporal regularisation (TensorFlow).
- `loop`: Adam, the training loop, checkpoints, resume, logs.

Importing this package does not import TensorFlow; `train()` does.
"""

from .camera import CameraSettings
from .data import SampleSource, TrainingDataError, load_scenes
from .loop import TrainConfig, TrainResult, train, write_preview

__all__ = [
    "CameraSettings",
    "SampleSource",
    "TrainConfig",
    "TrainResult",
    "TrainingDataError",
    "load_scenes",
    "train",
    "write_preview",
]
