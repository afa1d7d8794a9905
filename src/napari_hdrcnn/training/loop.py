"""The training loop: Adam with the reference schedule, validation, checkpoints, resume, logs.

Run directory layout (everything written atomically):
    weights.npz                   final (or last interrupted) weights, project format
    weights_authors.npz           optional, the authors' layout
    checkpoints/step_XXXXXX.npz   weights at a step (project format, metadata holds the step)
    checkpoints/step_XXXXXX.adam.npz  Adam's moments and step count beside it
    train_log.csv                 step, loss, val_loss, lr, seconds
    run.json                      the settings of the run
    tensorboard/                  optional TensorBoard event files
"""

from __future__ import annotations

import csv
import datetime as _dt
import functools
import json
import math
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write
from ..weights import Weights, load_weights, write_authors_npz, write_weights
from .camera import CameraSettings
from .data import (
    PREVIEW_STREAM,
    TRAIN_STREAM,
    VAL_STREAM,
    Prefetcher,
    SampleSource,
    TrainingDataError,
    load_scenes,
)

CHECKPOINT_RE = re.compile(r"^step_(\d+)\.npz$")
LOG_FIELDS = ("step", "loss", "val_loss", "lr", "seconds")
REG_STREAM = 3


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


# -- Adam -----------------------------------------------------------------------------------------
class Adam:
    """Adam as in TF1's AdamOptimizer (the authors'), with moments we can save and restore."""

    def __init__(self, variables, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8):
        import tensorflow as tf

        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.t = tf.Variable(0.0, trainable=False, dtype=tf.float32)

    def apply(self, grads, variables, lr) -> None:
        import tensorflow as tf

        t = self.t.assign_add(1.0)
        lr_t = lr * tf.sqrt(1.0 - tf.pow(self.beta2, t)) / (1.0 - tf.pow(self.beta1, t))
        for g, var, m, v in zip(grads, variables, self.m, self.v):
            m.assign(self.beta1 * m + (1.0 - self.beta1) * g)
            v.assign(self.beta2 * v + (1.0 - self.beta2) * tf.square(g))
            var.assign_sub(lr_t * m / (tf.sqrt(v) + self.epsilon))

    def state(self) -> dict[str, np.ndarray]:
        out = {"t": np.array(self.t.numpy(), np.float32)}
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            out[f"m_{i:02d}"] = m.numpy()
            out[f"v_{i:02d}"] = v.numpy()
        return out

    def load_state(self, state: dict[str, np.ndarray], source: str) -> None:
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            for name, var in ((f"m_{i:02d}", m), (f"v_{i:02d}", v)):
                if name not in state or tuple(state[name].shape) != tuple(var.shape):
                    raise TrainingDataError(
                        f"{source}: optimizer state {name} is missing or has the wrong shape"
                    )
                var.assign(state[name])
        self.t.assign(float(state["t"]))


# -- the step functions ---------------------------------------------------------------------------
class Trainer:
    """A model, its optimizer and the compiled train / evaluation steps for one crop size."""

    def __init__(
        self,
        model,
        *,
        crop: int,
        loss: str = "ir",
        loss_mask: str = "target",
        over_boost_weight: float = 0.0,
        over_boost_stops: float = 1.0,
        regularization: str = "none",
        reg_weight: float = 0.95,
        beta1: float = 0.9,
        beta2: float = 0.999,
        lr: float = 5e-5,
    ):
        import tensorflow as tf

        from .losses import LOSS_MASKS, LOSSES, REGULARIZATIONS

        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; one of {', '.join(LOSSES)}")
        if loss_mask not in LOSS_MASKS:
            raise ValueError(f"unknown loss mask {loss_mask!r}; one of {', '.join(LOSS_MASKS)}")
        if regularization not in REGULARIZATIONS:
            raise ValueError(
                f"unknown regularisation {regularization!r}; one of {', '.join(REGULARIZATIONS)}"
            )
        self.model = model
        self.loss = loss
        self.loss_mask = loss_mask
        self.over_boost = (float(over_boost_weight), float(over_boost_stops))
        self.regularization = regularization
        self.reg_weight = float(reg_weight)
        self.variables = model.trainable
        self.optimizer = Adam(self.variables, beta1, beta2)
        self.lr = tf.Variable(float(lr), trainable=False, dtype=tf.float32)
        img = tf.TensorSpec([None, crop, crop, 3], tf.float32)
        # No autograph: the step has no data-dependent Python control flow, and converting
        # the model's code costs seconds per trace.
        self.train_step = tf.function(
            self._train_step,
            autograph=False,
            input_signature=[
                img,
                img,
                tf.TensorSpec([None, 8], tf.float32),
                tf.TensorSpec([None], tf.float32),
                tf.TensorSpec([2], tf.int32),
            ],
        )
        self.eval_step = tf.function(self._eval_step, autograph=False, input_signature=[img, img])
        self.predict = tf.function(
            lambda x: model.log_prediction(x, training=False),
            autograph=False,
            input_signature=[img],
        )

    def _train_step(self, x, y, transforms, noise_std, noise_seed):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            total, rec, reg = self._losses(x, y, transforms, noise_std, noise_seed)
        grads = tape.gradient(total, self.variables)
        self.optimizer.apply(grads, self.variables, self.lr)
        return total, rec, reg

    def _losses(self, x, y, transforms, noise_std, noise_seed):
        """(total, reconstruction, regularisation) losses of a batch, each a mean over it."""
        import tensorflow as tf

        from .losses import (
            loss_mask,
            reconstruction_loss,
            regularization_term,
            warp,
            weighted_loss_mask,
        )

        y_log = self.model.log_prediction(x, training=True)
        mask = loss_mask(self.loss_mask, y, x)
        weighted = weighted_loss_mask(mask, y_log, y, *self.over_boost)
        rec = reconstruction_loss(self.loss, y_log, y, weighted)
        if self.regularization == "none":
            return rec, rec, tf.constant(0.0)
        noise = self._noise(x, noise_seed) * noise_std[:, None, None, None]
        moved = tf.clip_by_value(warp(x, transforms) + noise, 0.0, 1.0)
        y_log_moved = self.model.log_prediction(moved, training=True)
        reg = regularization_term(self.regularization, y_log, y_log_moved, y, transforms, mask)
        return (1.0 - self.reg_weight) * rec + self.reg_weight * reg, rec, reg

    def _noise(self, x, noise_seed):
        """Unit Gaussian noise of x's shape for the regularisation's moved copy."""
        import tensorflow as tf

        return tf.random.stateless_normal(tf.shape(x), noise_seed)

    def _eval_step(self, x, y):
        from .losses import loss_mask, reconstruction_loss, weighted_loss_mask

        y_log = self.model.log_prediction(x, training=False)
        mask = weighted_loss_mask(loss_mask(self.loss_mask, y, x), y_log, y, *self.over_boost)
        return reconstruction_loss(self.loss, y_log, y, mask)

    def run_step(self, batch: dict) -> float:
        """One optimisation step on a batch dict (x, y and, with regularisation, transforms,
        noise_std, noise_seed). Returns the total loss."""
        total, _, _ = self.train_step(*step_inputs(batch))
        return float(total)

    def evaluate(self, batches: list[dict]) -> float:
        """Sample-weighted mean loss over fixed batches (moving batch-norm statistics)."""
        total, count = 0.0, 0
        for b in batches:
            n = b["x"].shape[0]
            total += float(self.eval_step(b["x"], b["y"])) * n
            count += n
        return total / max(count, 1)


def step_inputs(batch: dict) -> tuple[np.ndarray, ...]:
    """x, y, transforms, noise_std, noise_seed of a batch dict; without regularisation inputs,
    identity motions and no noise."""
    n = batch["x"].shape[0]
    transforms = batch.get("transforms")
    if transforms is None:
        from .losses import IDENTITY_TRANSFORM  # a step imports TensorFlow anyway

        transforms = np.tile(IDENTITY_TRANSFORM, (n, 1))
    noise_std = batch.get("noise_std", np.zeros(n, np.float32))
    seed = batch.get("noise_seed", np.zeros(2, np.int32))
    return batch["x"], batch["y"], transforms, noise_std, seed


# -- several replicas -----------------------------------------------------------------------------
@functools.cache
def synced_batch_norm_model():
    """HDRCNN whose training batch norm is synchronised across replicas (class built on first
    use, so that importing this module does not import TensorFlow).

    Why synchronised: the reference recipe normalises with the statistics of the whole batch
    (4-16 samples). Split over replicas, per-replica statistics would come from 1-2 samples
    (at 1/32 resolution, a few pixels), and every replica would update the moving averages
    with different values. Here each replica's batch moments are all-reduced (two small
    all-reduces per batch-norm layer, against one of every gradient), so every replica
    normalises with the global batch's moments, exactly as one device would, and they all
    compute the same moving-average update. The update itself is not assigned inside the
    replica (a mirrored variable cannot take a replica-local assignment); the moments are
    recorded and the step applies them to every copy afterwards (DistributedTrainer).
    """
    import tensorflow as tf

    from ..architecture import BN_EPSILON
    from ..model import BN_MOMENTUM, HDRCNN

    class SyncedBatchNormHDRCNN(HDRCNN):
        momentum = BN_MOMENTUM

        def __init__(self, width_factor: float = 1.0, name: str | None = None):
            super().__init__(width_factor, name=name)
            self._moments = threading.local()  # MirroredStrategy runs replicas in threads

        def record_moments(self) -> list:
            """Start recording this replica's (layer, mean, variance) of training passes."""
            self._moments.recorded = []
            return self._moments.recorded

        def moving_statistics(self, name: str):
            return (
                self._by_name[f"{name}/bn/moving_mean"],
                self._by_name[f"{name}/bn/moving_variance"],
            )

        def _batch_norm(self, name, x, training):
            if not training:
                return super()._batch_norm(name, x, training)
            ctx = tf.distribute.get_replica_context()
            replicas = float(ctx.num_replicas_in_sync)
            axes = [0, 1, 2]  # replicas hold equal batches: the mean of means is the mean
            mean = ctx.all_reduce("SUM", tf.reduce_mean(x, axes)) / replicas
            var = (
                ctx.all_reduce(
                    "SUM",
                    tf.reduce_mean(tf.math.squared_difference(x, tf.stop_gradient(mean)), axes),
                )
                / replicas
            )
            self._moments.recorded.append((name, mean, var))
            beta = self._by_name[f"{name}/bn/beta"]
            gamma = self._by_name[f"{name}/bn/gamma"]
            return tf.nn.batch_normalization(x, mean, var, beta, gamma, BN_EPSILON)

    return SyncedBatchNormHDRCNN


class DistributedTrainer(Trainer):
    """A Trainer whose step runs on every replica of a tf.distribute strategy.

    Build it (and its model, a `synced_batch_norm_model()`) under `strategy.scope()`, so that
    every variable, the optimizer's included, is mirrored. Each replica computes its loss on
    its slice of the global batch, scaled by slice / global batch (what
    tf.nn.compute_average_loss does for per-sample losses; ours are already batch means), so
    the all-reduced (summed) gradients are those of the global batch's mean loss. Every
    replica then applies the same update to its own copy: the copies stay identical.
    """

    def __init__(self, strategy, model, *, global_batch: int, **kwargs):
        import tensorflow as tf

        from .distribute import per_replica_batch

        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync
        self.local_replicas = len(strategy.extended.worker_devices)
        self.global_batch = int(global_batch)
        self.per_replica = per_replica_batch(self.global_batch, self.replicas)
        self.local_batch = self.per_replica * self.local_replicas
        self._moment_names: list[str] = []
        with strategy.scope():
            super().__init__(model, **kwargs)
        # Inputs are per-replica values, so no input signature; their shapes never change.
        self.train_step = tf.function(self._distributed_step, autograph=False)

    def _replica_step(self, x, y, transforms, noise_std, noise_seed, stop):
        import tensorflow as tf

        ctx = tf.distribute.get_replica_context()
        recorded = self.model.record_moments()
        with tf.GradientTape() as tape:
            total, _, _ = self._losses(x, y, transforms, noise_std, noise_seed)
            scaled = total * (self.per_replica / self.global_batch)
        grads = tape.gradient(scaled, self.variables)
        self._moment_names = [name for name, _, _ in recorded]
        # One all-reduce, of one flat tensor, for the gradients, the loss and the stop vote:
        # fewer, larger messages between workers, and a faster trace than one per tensor.
        shapes = [g.shape for g in grads]
        flat = ctx.all_reduce(
            "SUM",
            tf.concat(
                [
                    tf.reshape(scaled, [1]),
                    tf.reshape(tf.cast(stop, tf.float32), [1]),
                    *(tf.reshape(g, [-1]) for g in grads),
                ],
                axis=0,
            ),
        )
        parts = tf.split(flat, [1, 1, *(s.num_elements() for s in shapes)])
        grads = [tf.reshape(g, s) for g, s in zip(parts[2:], shapes)]
        return parts[0][0], parts[1][0], grads, [(mean, var) for _, mean, var in recorded]

    def _noise(self, x, noise_seed):
        """This replica's slice of the noise of the worker's whole batch: the same noise as
        on one device, however the batch is split."""
        import tensorflow as tf

        ctx = tf.distribute.get_replica_context()
        part = ctx.replica_id_in_sync_group % self.local_replicas
        shape = tf.concat([[self.local_batch], tf.shape(x)[1:]], axis=0)
        return tf.random.stateless_normal(shape, noise_seed)[
            part * self.per_replica : (part + 1) * self.per_replica
        ]

    def _distributed_step(self, x, y, transforms, noise_std, noise_seed, stop):
        strategy = self.strategy
        loss, stop, grads, moments = strategy.run(
            self._replica_step, args=(x, y, transforms, noise_std, noise_seed, stop)
        )
        momentum = self.model.momentum

        def update_this_device(_, grads, moments):
            # Inside an update context a mirrored variable stands for this device's copy: the
            # single-device Adam and moving-average code update it with this device's
            # (all-reduced, hence identical) gradients and batch moments.
            self.optimizer.apply(grads, self.variables, self.lr)
            for name, (mean, var) in zip(self._moment_names, moments):
                for variable, value in zip(self.model.moving_statistics(name), (mean, var)):
                    variable.assign(momentum * variable + (1 - momentum) * value)

        strategy.extended.update(
            self.optimizer.t, update_this_device, args=(grads, moments), group=False
        )
        local = strategy.experimental_local_results  # all-reduced: the same on every replica
        return local(loss)[0], local(stop)[0]

    def run_step(self, batch: dict, stop: bool = False) -> tuple[float, bool]:
        """One step on this worker's share of the global batch (`local_batch` samples), split
        over its replicas. `stop` is this worker's wish to stop; returns the global batch's mean
        loss and whether any worker wants to stop, so that all stop after the same step."""
        x, y, transforms, noise_std, seed = step_inputs(batch)
        if x.shape[0] != self.local_batch:
            raise ValueError(
                f"this worker's batch has {x.shape[0]} samples, expected "
                f"{self.local_batch} ({self.per_replica} for each of its "
                f"{self.local_replicas} replicas)"
            )
        per, local_replicas = self.per_replica, self.local_replicas
        vote = np.float32(bool(stop))

        def slice_for(ctx):
            replica = ctx.replica_id_in_sync_group  # worker r holds replicas r*k .. r*k+k-1
            part = slice((replica % local_replicas) * per, (replica % local_replicas + 1) * per)
            return x[part], y[part], transforms[part], noise_std[part], seed, vote

        values = self.strategy.experimental_distribute_values_from_function(slice_for)
        loss, stop_votes = self.train_step(*values)
        return float(loss), float(stop_votes) > 0

    def sync_with_chief(self, step: int) -> int:
        """Give every worker the chief's weights, optimizer state and step, so that they
        start identical and only the chief needs to read a checkpoint to resume. Returns the
        chief's step."""
        state = [*self.model.tensors, *self.optimizer.m, *self.optimizer.v, self.optimizer.t]
        *values, chief_step = from_chief(
            self.strategy, [*(v.numpy() for v in state), np.float32(step)]
        )
        for var, value in zip(state, values):
            var.assign(value)
        return int(chief_step)


def sum_over_replicas(strategy, arrays: list[np.ndarray], chief_only: bool = False):
    """The sum over all replicas of every worker of each array (only replica 0's, on the
    chief, with `chief_only`), on every worker. Every worker must call it alike."""
    import tensorflow as tf

    def replica(values):
        ctx = tf.distribute.get_replica_context()
        keep = tf.equal(ctx.replica_id_in_sync_group, 0) if chief_only else True
        # (tf.where also puts the values on this replica's device, as all_reduce wants)
        return ctx.all_reduce("SUM", [tf.where(keep, v, tf.zeros_like(v)) for v in values])

    sums = tf.function(lambda values: strategy.run(replica, args=(values,)), autograph=False)
    local = strategy.experimental_local_results
    return [local(v)[0].numpy() for v in sums([tf.constant(a) for a in arrays])]


def from_chief(strategy, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The chief's `arrays` on every worker (each worker passes arrays of the same shapes;
    only the chief's count). Sent as one float32 vector: one message, one trace."""
    arrays = [np.asarray(a, np.float32) for a in arrays]
    flat = sum_over_replicas(strategy, [np.concatenate([a.ravel() for a in arrays])], True)[0]
    bounds = np.cumsum([a.size for a in arrays])[:-1]
    return [part.reshape(a.shape) for part, a in zip(np.split(flat, bounds), arrays)]


def check_same_settings(strategy, settings: dict[str, float]) -> None:
    """Every worker raises unless all train with the chief's settings. Run it before the
    model exists: different widths, crops or batches would give the workers' collectives
    different shapes or counts, which hangs or crashes them instead of saying why."""
    names = sorted(settings)
    mine = np.array([settings[n] for n in names], np.float32)
    chief = from_chief(strategy, [mine])[0]
    differ = [
        f"{n} {chief[i]:g} (this worker: {mine[i]:g})"
        for i, n in enumerate(names)
        if chief[i] != mine[i]
    ]
    if sum_over_replicas(strategy, [np.float32(bool(differ))])[0] > 0:
        raise ValueError(
            "every worker must train with the chief's settings: "
            + (
                "the chief has " + ", ".join(differ)
                if differ
                else "another worker's differ (see its error)"
            )
        )


# -- helpers --------------------------------------------------------------------------------------
def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def checkpoint_path(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"step_{step:06d}.npz"


def optimizer_path(ckpt: Path) -> Path:
    return ckpt.with_name(ckpt.name[: -len(".npz")] + ".adam.npz")


def list_checkpoints(out: Path) -> list[tuple[int, Path]]:
    folder = Path(out) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return sorted(found)


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder -> its latest checkpoint."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    found = list_checkpoints(p)
    if not found:
        raise TrainingDataError(
            f"{p}: no checkpoints to resume from (looked in {p / 'checkpoints'})"
        )
    return found[-1][1]


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def append_log_row(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in LOG_FIELDS})


def write_json(path: Path, data: dict) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)

    atomic_write(path, write)


def steps_per_epoch(config: TrainConfig, n_scenes: int) -> int:
    samples = config.epoch_size or 16 * n_scenes
    return max(1, math.ceil(samples / config.batch_size))


def learning_rate(config: TrainConfig, step: int, per_epoch: int) -> float:
    return config.lr * config.lr_decay ** (step // per_epoch)


def regularization_inputs(
    config: TrainConfig, step: int, n: int, rank: int = 0
) -> dict[str, np.ndarray]:
    """The random motions and noise of one step's second pass, deterministic for (seed, step)
    and different on each worker (`rank`) of a multi-worker run."""
    from .losses import random_transforms

    rng = np.random.default_rng([config.seed, REG_STREAM, step, *([rank] if rank else [])])
    return {
        "transforms": random_transforms(rng, n, (config.crop, config.crop), config.reg_strength),
        "noise_std": rng.uniform(*config.reg_noise, n).astype(np.float32),
        "noise_seed": rng.integers(0, 2**31 - 1, 2).astype(np.int32),
    }


def preview_image(x: np.ndarray, y: np.ndarray, y_log: np.ndarray | None) -> np.ndarray:
    """Input | target | prediction side by side, linear values shown 2 stops down, gamma 2.2."""
    from ..architecture import LOG_EPS, blend_alpha

    show = lambda lin: np.clip(lin * 0.25, 0, 1) ** (1 / 2.2)  # noqa: E731
    panels = [x, show(y)]
    if y_log is not None:
        alpha = blend_alpha(x.max(-1, keepdims=True))
        panels.append(show((1 - alpha) * x**2.2 + alpha * (np.exp(y_log) - LOG_EPS)))
    return np.concatenate(panels, axis=1).astype(np.float32)


def tensorboard_writer(folder: Path):
    import tensorflow as tf

    return tf.summary.create_file_writer(str(folder))


def _summary_metadata(plugin: str, data_class: int):
    from tensorflow.core.framework import summary_pb2

    meta = summary_pb2.SummaryMetadata()
    meta.plugin_data.plugin_name = plugin
    meta.data_class = data_class
    return meta


def write_summaries(
    writer, step: int, scalars: dict[str, float], images: np.ndarray | None
) -> None:
    """Scalars and images in TensorBoard's own encoding, written with TensorFlow's core
    `tf.summary.write`, so the logs need no tensorboard package (only viewing them does)."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    with writer.as_default(step=step):
        for name, value in scalars.items():
            tf.summary.write(
                name,
                tf.constant(float(value), tf.float32),
                metadata=_summary_metadata("scalars", summary_pb2.DATA_CLASS_SCALAR),
            )
        if images is not None:
            h, w = images.shape[1:3]
            pngs = [
                tf.io.encode_png(tf.constant(np.round(np.clip(im, 0, 1) * 255).astype(np.uint8)))
                for im in images
            ]
            blob = tf.stack([tf.constant(str(w)), tf.constant(str(h)), *pngs])
            tf.summary.write(
                "val_input_target_prediction",
                blob,
                metadata=_summary_metadata("images", summary_pb2.DATA_CLASS_BLOB_SEQUENCE),
            )


# -- the run --------------------------------------------------------------------------------------
class StopFlag:
    """Set from a signal handler or a caller; the loop saves and returns at the next step."""

    def __init__(self) -> None:
        self.set_reason: str | None = None

    def set(self, reason: str = "stopped") -> None:
        self.set_reason = reason

    def __bool__(self) -> bool:
        return self.set_reason is not None


@dataclass
class TrainResult:
    weights_path: Path
    step: int
    loss: float
    val_loss: float | None
    seconds: float
    stopped: str | None
    val_loss_baseline: float | None = None  # of the linearised input, no reconstruction


def initial_weights(config: TrainConfig, model) -> tuple[int, Path | None, dict]:
    """Resume > init file > the authors' training initialisation. Returns (start step,
    checkpoint used, metadata of the weights loaded)."""
    from ..model import training_init

    if config.resume:
        ckpt = find_checkpoint(config.resume)
        w = load_weights(ckpt)
        if abs(w.width_factor - config.width_factor) > 1e-9:
            raise TrainingDataError(
                f"{ckpt}: width factor {w.width_factor} differs from the "
                f"run's {config.width_factor}"
            )
        model.set_weights(w.tensors)
        return int(w.metadata.get("step", 0)), ckpt, w.metadata
    if config.init:
        w = load_weights(config.init)
        if abs(w.width_factor - config.width_factor) > 1e-9:
            raise TrainingDataError(
                f"{config.init}: width factor {w.width_factor} differs "
                f"from --width-factor {config.width_factor}"
            )
        model.set_weights(w.tensors)
        return 0, None, w.metadata
    training_init(model, config.seed)
    return 0, None, {}


def load_training_data(
    config: TrainConfig, log: Callable[[str], None], validation: bool = True
) -> tuple[SampleSource, list[dict]]:
    """The training sample source and the fixed validation batches (empty without --val, or
    when `validation` is off: the workers of a multi-worker run other than the chief)."""

    def scenes_of(folder: str):
        return load_scenes(
            folder,
            crop=config.crop,
            mode=config.data_mode,
            panorama=config.panorama,
            ldr_linearize=config.ldr_linearize,
            max_side=config.max_side,
        )

    log(f"loading training scenes from {config.data}")
    scenes = scenes_of(config.data)
    n_pano = sum(s.panorama for s in scenes)
    log(f"{len(scenes)} scenes ({n_pano} panoramas, {len(scenes) - n_pano} photos)")
    val_batches = []
    if config.val and validation:
        val_scenes = scenes_of(config.val)
        val_batches = SampleSource(
            val_scenes, config.camera, config.seed, VAL_STREAM
        ).fixed_batches(config.val_samples, config.batch_size)
        log(f"{len(val_scenes)} validation scenes, {config.val_samples} fixed samples")
    return SampleSource(scenes, config.camera, config.seed, TRAIN_STREAM), val_batches


def restore_optimizer(trainer: Trainer, ckpt: Path, log: Callable[[str], None]) -> float:
    """Adam's state saved beside a checkpoint, if there; returns the training seconds so far."""
    seconds = 0.0
    opt_file = optimizer_path(ckpt)
    if opt_file.is_file():
        with np.load(opt_file, allow_pickle=False) as z:
            state = {k: z[k] for k in z.files}
        trainer.optimizer.load_state(state, str(opt_file))
        seconds = float(state.get("seconds", 0.0))
    else:
        log(f"{opt_file.name} not found: Adam restarts from zero moments")
    return seconds


def total_steps(config: TrainConfig, per_epoch: int) -> int:
    if config.epochs is not None:
        return max(1, math.ceil(config.epochs * per_epoch))
    return int(config.steps)


def make_trainer(
    config: TrainConfig, strategy, *, chief: bool, log: Callable[[str], None]
) -> tuple[Trainer, int, Path | None]:
    """The model and its trainer with their starting weights: (trainer, start step, checkpoint
    used). With a strategy, the variables are mirrored on its replicas."""
    kwargs = dict(
        crop=config.crop,
        loss=config.loss,
        loss_mask=config.loss_mask,
        over_boost_weight=config.over_boost_weight,
        over_boost_stops=config.over_boost_stops,
        regularization=config.regularization,
        reg_weight=config.reg_weight,
        beta1=config.beta1,
        beta2=config.beta2,
        lr=config.lr,
    )
    if strategy is None:
        from ..model import HDRCNN

        model = HDRCNN(config.width_factor)
        start, ckpt, _ = initial_weights(config, model)
        return Trainer(model, **kwargs), start, ckpt
    with strategy.scope():
        model = synced_batch_norm_model()(config.width_factor)
    if config.resume and not chief and not has_checkpoint(config.resume):
        log(f"no checkpoint in {config.resume} on this worker: it starts from the chief's")
        config = TrainConfig.from_dict({**config.to_dict(), "resume": None})
    start, ckpt, _ = initial_weights(config, model)
    trainer = DistributedTrainer(strategy, model, global_batch=config.batch_size, **kwargs)
    return trainer, start, ckpt


def has_checkpoint(path: str | os.PathLike) -> bool:
    p = Path(path).expanduser()
    return p.is_file() or bool(list_checkpoints(p))


def shared_settings(config: TrainConfig, strategy, per_epoch: int, end: int) -> dict[str, float]:
    """What every worker of a multi-worker run must agree on, as numbers."""
    from .losses import LOSS_MASKS, LOSSES, REGULARIZATIONS

    return dict(
        width_factor=config.width_factor,
        crop=config.crop,
        batch_size=config.batch_size,
        total_steps=end,
        steps_per_epoch=per_epoch,
        lr=config.lr,
        lr_decay=config.lr_decay,
        beta1=config.beta1,
        beta2=config.beta2,
        reg_weight=config.reg_weight,
        loss=LOSSES.index(config.loss),
        loss_mask=LOSS_MASKS.index(config.loss_mask),
        over_boost_weight=config.over_boost_weight,
        over_boost_stops=config.over_boost_stops,
        regularization=REGULARIZATIONS.index(config.regularization),
        replicas_per_worker=len(strategy.extended.worker_devices),
    )


def train(
    config: TrainConfig,
    *,
    stop: StopFlag | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    strategy: str = "none",
    worker_out: str | os.PathLike | None = None,
) -> TrainResult:
    """Train (or resume) a run; returns where the final weights are.

    `strategy`: "none" (one device), "mirrored" (this machine's GPUs) or "multi-worker"
    (TF_CONFIG's cluster); see `training.distribute`. config.batch_size is the global batch.
    Only the chief writes the run folder (checkpoints, weights, logs, TensorBoard): every
    variable is mirrored, so the chief's copy is the whole state, and the files are written
    from numpy values without any collective step that the others would have to join. The
    other workers write nothing, or, given `worker_out`, their final weights there (to check
    that the workers agree). Resuming, every worker takes the chief's weights, optimizer
    state and step (`DistributedTrainer.sync_with_chief`).
    """
    import tensorflow as tf

    from .distribute import WorkerSampleSource, current_cluster, make_strategy

    replication = make_strategy(strategy)  # before any TensorFlow op (multi-worker needs it)
    cluster = current_cluster() if strategy == "multi-worker" else None
    rank = cluster.rank if cluster is not None else 0
    chief = rank == 0
    if not chief:
        log = (lambda say: lambda m: say(f"[worker {rank}] {m}"))(log)
        progress = False
    stop = stop if stop is not None else StopFlag()
    out = Path(config.out).expanduser()
    if chief:
        out.mkdir(parents=True, exist_ok=True)

    source, val_batches = load_training_data(config, log, validation=chief)
    if rank:
        source = WorkerSampleSource(source, rank)
    baseline = (
        baseline_loss(
            val_batches,
            config.loss,
            config.linearize,
            config.loss_mask,
            (config.over_boost_weight, config.over_boost_stops),
        )
        if val_batches
        else None
    )
    if baseline is not None:
        log(
            f"validation loss of the linearised input, no reconstruction: {baseline:.4g} "
            "(a useful model goes below it)"
        )

    per_epoch = steps_per_epoch(config, len(source.scenes))
    end = total_steps(config, per_epoch)
    if cluster is not None:
        check_same_settings(replication, shared_settings(config, replication, per_epoch, end))
    trainer, start, ckpt = make_trainer(config, replication, chief=chief, log=log)
    model = trainer.model
    distributed = isinstance(trainer, DistributedTrainer)
    seconds_before = 0.0
    if ckpt is not None:
        seconds_before = restore_optimizer(trainer, ckpt, log)
        log(f"resuming from {ckpt} at step {start}")
    if cluster is not None:
        start = trainer.sync_with_chief(start)
    local_batch = trainer.local_batch if distributed else config.batch_size

    settings = config.to_dict()
    settings.update(
        scenes=len(source.scenes),
        steps_per_epoch=per_epoch,
        total_steps=end,
        val_loss_baseline=baseline,
        git_commit=git_commit(),
        started=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        tensorflow=tf.__version__,
    )
    if distributed:
        settings.update(
            strategy=strategy,
            replicas=trainer.replicas,
            per_replica_batch=trainer.per_replica,
            workers=cluster.num_workers if cluster is not None else 1,
        )
        log(
            f"{strategy} strategy: {trainer.replicas} replicas, {trainer.per_replica} samples "
            f"each of the global batch of {config.batch_size}"
        )
    if chief:
        write_json(out / "run.json", settings)

    writer = None
    if config.tensorboard and chief:
        writer = tensorboard_writer(out / "tensorboard")

    def make_batch(step: int) -> dict:
        batch = source.batch(step, local_batch)
        if config.regularization != "none":
            batch.update(regularization_inputs(config, step, local_batch, rank))
        return batch

    metadata = dict(
        data=str(config.data),
        seed=config.seed,
        crop=config.crop,
        batch_size=config.batch_size,
        width_factor=config.width_factor,
        loss=config.loss,
        loss_mask=config.loss_mask,
        over_boost_weight=config.over_boost_weight,
        over_boost_stops=config.over_boost_stops,
        regularization=config.regularization,
        lr=config.lr,
        camera=config.camera.to_dict(),
        git_commit=settings["git_commit"],
        trained_by="hdrcnn train",
    )

    def save_weights(path: Path, step: int) -> None:
        w = Weights(
            [t.copy() for t in model.get_weights()],
            config.width_factor,
            config.linearize,
            source=str(path),
        )
        write_weights(
            w,
            path,
            step=step,
            date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **metadata,
        )

    def save_checkpoint(step: int, seconds: float) -> Path:
        path = checkpoint_path(out, step)
        save_weights(path, step)
        save_npz(
            optimizer_path(path),
            {**trainer.optimizer.state(), "step": np.array(step), "seconds": np.array(seconds)},
        )
        if config.keep_checkpoints > 0:
            for _, old in list_checkpoints(out)[: -config.keep_checkpoints]:
                for f in (old, optimizer_path(old)):
                    if f.exists():
                        f.unlink()
        return path

    def record(
        step: int,
        losses: list[float],
        lr: float,
        seconds: float,
        val: float | None,
        images: np.ndarray | None,
    ) -> None:
        """One row of train_log.csv, TensorBoard and (without a progress bar) the console."""
        mean = float(np.mean(losses))
        append_log_row(
            out / "train_log.csv",
            {
                "step": step,
                "loss": f"{mean:.6g}",
                "lr": f"{lr:.6g}",
                "seconds": f"{seconds:.1f}",
                "val_loss": f"{val:.6g}" if val is not None else "",
            },
        )
        if writer is not None:
            write_summaries(
                writer,
                step,
                {
                    "loss": mean,
                    "learning_rate": lr,
                    **({"val_loss": val} if val is not None else {}),
                },
                images,
            )
        if bar is None:
            log(
                f"step {step}/{end} loss {mean:.4g}"
                + (f" val {val:.4g}" if val is not None else "")
                + f" {seconds:.0f}s"
            )

    if not chief:  # the chief alone writes the run folder
        record = save_checkpoint = lambda *args: None  # noqa: E731

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=end, initial=start, unit="step", dynamic_ncols=True)

    step, window, last_loss, val_loss = start, [], float("nan"), None
    t0 = time.monotonic()
    deadline = t0 + config.max_minutes * 60 if config.max_minutes else None
    prefetch = Prefetcher(make_batch, start, end)
    try:
        for step_index, batch in prefetch:
            if stop and not distributed:
                break
            trainer.lr.assign(learning_rate(config, step_index, per_epoch))
            if distributed:  # a stop is voted on in the step: every worker stops after it
                last_loss, all_stop = trainer.run_step(batch, stop=bool(stop))
            else:
                last_loss = trainer.run_step(batch)
            if not math.isfinite(last_loss):
                raise FloatingPointError(
                    f"loss became {last_loss} at step {step_index + 1}; lower --lr"
                )
            window.append(last_loss)
            step = step_index + 1
            seconds = seconds_before + time.monotonic() - t0
            do_val = bool(val_batches) and (step % config.val_every == 0 or step == end)
            if do_val:
                val_loss = trainer.evaluate(val_batches)
            if step % config.log_every == 0 or do_val or step == end:
                images = (
                    validation_images(trainer, val_batches[0])
                    if do_val and writer is not None
                    else None
                )
                record(
                    step,
                    window,
                    float(trainer.lr.numpy()),
                    seconds,
                    val_loss if do_val else None,
                    images,
                )
                window = []
            if bar is not None:
                bar.update(1)
                post = {"loss": f"{last_loss:.4g}"}
                if val_loss is not None:
                    post["val"] = f"{val_loss:.4g}"
                bar.set_postfix(post, refresh=False)
            if step % config.checkpoint_every == 0 and step != end:
                save_checkpoint(step, seconds)
            if deadline is not None and time.monotonic() > deadline:
                stop.set("time limit reached")
            if distributed and all_stop:
                if not stop:
                    stop.set("stopped by another worker")
                break
    except KeyboardInterrupt:
        stop.set("interrupted")
    finally:
        prefetch.close()
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.flush()

    seconds = seconds_before + time.monotonic() - t0
    if window:  # steps since the last log row (a stop between rows)
        record(step, window, float(trainer.lr.numpy()), seconds, None, None)
    if writer is not None:
        writer.flush()
    if chief and (step > start or not list_checkpoints(out)):
        save_checkpoint(step, seconds)
    final = out / "weights.npz"
    if chief:
        save_weights(final, step)
    elif worker_out is not None:
        final = Path(worker_out).expanduser() / "weights.npz"
        final.parent.mkdir(parents=True, exist_ok=True)
        save_weights(final, step)
    if config.export_authors and chief:
        w = Weights(model.get_weights(), config.width_factor, config.linearize)
        write_authors_npz(w, out / "weights_authors.npz")
    if stop:
        log(f"{stop.set_reason} at step {step}; saved {final} (resume with --resume {out})")
    return TrainResult(final, step, last_loss, val_loss, seconds, stop.set_reason, baseline)


def baseline_loss(
    batches: list[dict],
    loss: str,
    linearize: str,
    mask_kind: str = "target",
    over_boost: tuple[float, float] = (0.0, 1.0),
) -> float:
    """The loss of predicting the linearised input itself (`ldr_linear`): the level a trained
    model must beat to have reconstructed anything."""
    from ..architecture import LOG_EPS
    from ..reconstruct import linearize_pixels
    from .losses import loss_mask, reconstruction_loss, weighted_loss_mask

    total, count = 0.0, 0
    for b in batches:
        y_log = np.log(linearize_pixels(b["x"], linearize) + LOG_EPS).astype(np.float32)
        mask = weighted_loss_mask(loss_mask(mask_kind, b["y"], b["x"]), y_log, b["y"], *over_boost)
        total += float(reconstruction_loss(loss, y_log, b["y"], mask)) * len(b["x"])
        count += len(b["x"])
    return total / max(count, 1)


def validation_images(trainer: Trainer, batch: dict, n: int = 4) -> np.ndarray:
    y_log = trainer.predict(batch["x"][:n]).numpy()
    return np.stack(
        [preview_image(batch["x"][i], batch["y"][i], y_log[i]) for i in range(len(y_log))]
    )


def write_preview(config: TrainConfig, n: int, out_dir: str | os.PathLike) -> list[Path]:
    """n sample pairs from the camera: PNG of input | target (2 stops down) and the EXR target."""
    from ..io import write_exr, write_png

    scenes = load_scenes(
        config.data,
        crop=config.crop,
        mode=config.data_mode,
        panorama=config.panorama,
        ldr_linearize=config.ldr_linearize,
        max_side=config.max_side,
    )
    source = SampleSource(scenes, config.camera, config.seed, PREVIEW_STREAM)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(n):
        b = source.batch(i, 1)
        x, y = b["x"][0], b["y"][0]
        png = out / f"sample_{i:03d}.png"
        write_png(png, np.round(preview_image(x, y, None) * 255).astype(np.uint8))
        exr = out / f"sample_{i:03d}_target.exr"
        write_exr(exr, y)
        written += [png, exr]
    return written
