"""The settings of a training run (`TrainConfig`, recorded in run.json) and the schedule they
define: steps per epoch, total steps, the learning rate at a step."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .camera import CameraSettings


@dataclass
class TrainConfig:
    data: str
    out: str
    val: str | None = None
    width_factor: float = 0.25
    crop: int = 224
    batch_size: int = 8
    steps: int = 1000
    epochs: float | None = None  # alternative to steps (epoch_size samples each)
    epoch_size: int | None = None  # samples per epoch; default 16 per scene
    lr: float = 5e-5
    lr_decay: float = 0.99  # per epoch
    beta1: float = 0.9
    beta2: float = 0.999
    loss: str = "ir"
    loss_mask: str = "target"  # the authors'; "blend" also trains where the blend uses
    # over-boost of faint highlights (target < 2^stops x white) costs 1 + weight times more
    over_boost_weight: float = 0.0
    over_boost_stops: float = 1.0
    regularization: str = "none"
    reg_weight: float = 0.95  # a in (1 - a) * loss + a * reg
    reg_strength: float = 1.0
    reg_noise: tuple[float, float] = (0.01, 0.05)
    seed: int = 0
    init: str | None = None
    resume: str | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 5  # 0 keeps all
    val_every: int = 250
    val_samples: int = 32
    log_every: int = 10
    linearize: str = "gamma2.2"
    data_mode: str = "auto"
    panorama: str = "auto"
    ldr_linearize: str = "gamma2.2"
    max_side: int = 2048
    tensorboard: bool = True
    max_minutes: float | None = None
    export_authors: bool = False
    camera: CameraSettings = field(default_factory=CameraSettings)

    def __post_init__(self) -> None:
        if self.crop % 32 or self.crop < 32:
            raise ValueError(f"crop must be a positive multiple of 32, got {self.crop}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if self.width_factor <= 0:
            raise ValueError(f"width factor must be positive, got {self.width_factor}")
        if self.over_boost_weight < 0:
            raise ValueError(f"over-boost weight must be >= 0, got {self.over_boost_weight}")
        if self.over_boost_stops <= 0:
            raise ValueError(f"over-boost stops must be positive, got {self.over_boost_stops}")
        if self.camera.crop != self.crop:
            self.camera = CameraSettings.from_dict({**self.camera.to_dict(), "crop": self.crop})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["camera"] = self.camera.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        camera = CameraSettings.from_dict(d.pop("camera", {}))
        names = set(cls.__dataclass_fields__)
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return cls(camera=camera, **kw)


def steps_per_epoch(config: TrainConfig, n_scenes: int) -> int:
    samples = config.epoch_size or 16 * n_scenes
    return max(1, math.ceil(samples / config.batch_size))


def total_steps(config: TrainConfig, per_epoch: int) -> int:
    if config.epochs is not None:
        return max(1, math.ceil(config.epochs * per_epoch))
    return int(config.steps)


def learning_rate(config: TrainConfig, step: int, per_epoch: int) -> float:
    return config.lr * config.lr_decay ** (step // per_epoch)
