"""Training HDR-CNN weights: `hdrcnn train` and its parts.

- `camera`: the virtual camera (numpy): panorama views / photo crops, clip-fraction exposure,
  camera curves, colour jitter, noise, 8-bit quantisation, JPEG.
- `data`: scenes decoded once and kept in memory, deterministic batches, prefetching.
- `losses`: masked log-domain losses and temporal regularisation (TensorFlow).
- `config`: the run's settings (`TrainConfig`) and its schedule (epochs, learning rate).
- `trainer`: Adam and the compiled train / evaluation steps on one device.
- `distribute`: strategies, the cluster, the replicated step, the workers' collectives.
- `run_dir`: the run folder: weights, checkpoints, train_log.csv, run.json, TensorBoard.
- `loop`: `train()`: set-up, the steps, resume, the final weights.
- `widen`: a trained network made wider with the same output (`--init` at a larger width).

Importing this package does not import TensorFlow; `train()` does.
"""

from .camera import CameraSettings
from .config import TrainConfig
from .data import SampleSource, TrainingDataError, load_scenes
from .loop import TrainResult, train, write_preview

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
