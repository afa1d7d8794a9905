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
import json
import math
import os
import re
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..weights import Weights, atomic_file, load_weights, write_authors_npz, write_weights
from .camera import CameraSettings
from .data import (PREVIEW_STREAM, TRAIN_STREAM, VAL_STREAM, Prefetcher, SampleSource,
                   TrainingDataError, load_scenes)

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
    epochs: float | None = None          # alternative to steps (epoch_size samples each)
    epoch_size: int | None = None        # samples per epoch; default 16 per scene
    lr: float = 5e-5
    lr_decay: float = 0.99               # per epoch
    beta1: float = 0.9
    beta2: float = 0.999
    loss: str = "ir"
    regularization: str = "none"
    reg_weight: float = 0.95             # a in (1 - a) * loss + a * reg
    reg_strength: float = 1.0
    reg_noise: tuple[float, float] = (0.01, 0.05)
    seed: int = 0
    init: str | None = None
    resume: str | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 5            # 0 keeps all
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
        if self.camera.crop != self.crop:
            self.camera = CameraSettings.from_dict({**self.camera.to_dict(), "crop": self.crop})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["camera"] = self.camera.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        camera = CameraSettings.from_dict(d.pop("camera", {}))
        names = set(cls.__dataclass_fields__)
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return cls(camera=camera, **kw)


# -- Adam --------------------------------------------------------------------------------------------
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
                    raise TrainingDataError(f"{source}: optimizer state {name} is missing or "
                                            "has the wrong shape")
                var.assign(state[name])
        self.t.assign(float(state["t"]))


# -- the step functions ----------------------------------------------------------------------------
class Trainer:
    """A model, its optimizer and the compiled train / evaluation steps for one crop size."""

    def __init__(self, model, *, crop: int, loss: str = "ir", regularization: str = "none",
                 reg_weight: float = 0.95, beta1: float = 0.9, beta2: float = 0.999,
                 lr: float = 5e-5):
        import tensorflow as tf

        from .losses import LOSSES, REGULARIZATIONS

        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; one of {', '.join(LOSSES)}")
        if regularization not in REGULARIZATIONS:
            raise ValueError(f"unknown regularisation {regularization!r}; one of "
                             f"{', '.join(REGULARIZATIONS)}")
        self.model = model
        self.loss = loss
        self.regularization = regularization
        self.reg_weight = float(reg_weight)
        self.variables = model.trainable
        self.optimizer = Adam(self.variables, beta1, beta2)
        self.lr = tf.Variable(float(lr), trainable=False, dtype=tf.float32)
        img = tf.TensorSpec([None, crop, crop, 3], tf.float32)
        # No autograph: the step has no data-dependent Python control flow, and converting
        # the model's code costs seconds per trace.
        self.train_step = tf.function(self._train_step, autograph=False, input_signature=[
            img, img, tf.TensorSpec([None, 8], tf.float32), tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([2], tf.int32)])
        self.eval_step = tf.function(self._eval_step, autograph=False,
                                     input_signature=[img, img])
        self.predict = tf.function(lambda x: model.log_prediction(x, training=False),
                                   autograph=False, input_signature=[img])

    def _train_step(self, x, y, transforms, noise_std, noise_seed):
        import tensorflow as tf

        from .losses import reconstruction_loss, regularization_term, warp

        with tf.GradientTape() as tape:
            y_log = self.model.log_prediction(x, training=True)
            rec = reconstruction_loss(self.loss, y_log, y)
            if self.regularization == "none":
                reg = tf.constant(0.0)
                total = rec
            else:
                noise = tf.random.stateless_normal(tf.shape(x), noise_seed) * noise_std[:, None,
                                                                                         None, None]
                moved = tf.clip_by_value(warp(x, transforms) + noise, 0.0, 1.0)
                y_log_moved = self.model.log_prediction(moved, training=True)
                reg = regularization_term(self.regularization, y_log, y_log_moved, y, transforms)
                total = (1.0 - self.reg_weight) * rec + self.reg_weight * reg
        grads = tape.gradient(total, self.variables)
        self.optimizer.apply(grads, self.variables, self.lr)
        return total, rec, reg

    def _eval_step(self, x, y):
        from .losses import reconstruction_loss

        return reconstruction_loss(self.loss, self.model.log_prediction(x, training=False), y)

    def run_step(self, batch: dict) -> float:
        """One optimisation step on a batch dict (x, y and, with regularisation, transforms,
        noise_std, noise_seed). Returns the total loss."""
        n = batch["x"].shape[0]
        transforms = batch.get("transforms")
        if transforms is None:
            transforms = np.tile(np.array([1, 0, 0, 0, 1, 0, 0, 0], np.float32), (n, 1))
        noise_std = batch.get("noise_std", np.zeros(n, np.float32))
        seed = batch.get("noise_seed", np.zeros(2, np.int32))
        total, _, _ = self.train_step(batch["x"], batch["y"], transforms, noise_std, seed)
        return float(total)

    def evaluate(self, batches: list[dict]) -> float:
        """Sample-weighted mean loss over fixed batches (moving batch-norm statistics)."""
        total, count = 0.0, 0
        for b in batches:
            n = b["x"].shape[0]
            total += float(self.eval_step(b["x"], b["y"])) * n
            count += n
        return total / max(count, 1)


# -- helpers ----------------------------------------------------------------------------------------
def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def checkpoint_path(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"step_{step:06d}.npz"


def optimizer_path(ckpt: Path) -> Path:
    return ckpt.with_name(ckpt.name[:-len(".npz")] + ".adam.npz")


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
        raise TrainingDataError(f"{p}: no checkpoints to resume from (looked in "
                                f"{p / 'checkpoints'})")
    return found[-1][1]


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    atomic_file(path, write)


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
    atomic_file(path, write)


def steps_per_epoch(config: TrainConfig, n_scenes: int) -> int:
    samples = config.epoch_size or 16 * n_scenes
    return max(1, math.ceil(samples / config.batch_size))


def learning_rate(config: TrainConfig, step: int, per_epoch: int) -> float:
    return config.lr * config.lr_decay ** (step // per_epoch)


def regularization_inputs(config: TrainConfig, step: int, n: int) -> dict[str, np.ndarray]:
    """The random motions and noise of one step's second pass, deterministic for (seed, step)."""
    from .losses import random_transforms

    rng = np.random.default_rng([config.seed, REG_STREAM, step])
    return {"transforms": random_transforms(rng, n, (config.crop, config.crop),
                                            config.reg_strength),
            "noise_std": rng.uniform(*config.reg_noise, n).astype(np.float32),
            "noise_seed": rng.integers(0, 2**31 - 1, 2).astype(np.int32)}


def preview_image(x: np.ndarray, y: np.ndarray, y_log: np.ndarray | None) -> np.ndarray:
    """Input | target | prediction side by side, linear values shown 2 stops down, gamma 2.2."""
    from ..architecture import LOG_EPS

    show = lambda lin: np.clip(lin * 0.25, 0, 1) ** (1 / 2.2)  # noqa: E731
    panels = [x, show(y)]
    if y_log is not None:
        alpha = np.clip((x.max(-1, keepdims=True) - 0.95) / 0.05, 0, 1)
        panels.append(show((1 - alpha) * x ** 2.2 + alpha * (np.exp(y_log) - LOG_EPS)))
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


def write_summaries(writer, step: int, scalars: dict[str, float],
                    images: np.ndarray | None) -> None:
    """Scalars and images in TensorBoard's own encoding, written with TensorFlow's core
    `tf.summary.write`, so the logs need no tensorboard package (only viewing them does)."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    with writer.as_default(step=step):
        for name, value in scalars.items():
            tf.summary.write(name, tf.constant(float(value), tf.float32), metadata=
                             _summary_metadata("scalars", summary_pb2.DATA_CLASS_SCALAR))
        if images is not None:
            h, w = images.shape[1:3]
            pngs = [tf.io.encode_png(tf.constant(np.round(np.clip(im, 0, 1) * 255)
                                                 .astype(np.uint8))) for im in images]
            blob = tf.stack([tf.constant(str(w)), tf.constant(str(h)), *pngs])
            tf.summary.write("val_input_target_prediction", blob, metadata=
                             _summary_metadata("images", summary_pb2.DATA_CLASS_BLOB_SEQUENCE))


# -- the run -------------------------------------------------------------------------------------------
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
            raise TrainingDataError(f"{ckpt}: width factor {w.width_factor} differs from the "
                                    f"run's {config.width_factor}")
        model.set_weights(w.tensors)
        return int(w.metadata.get("step", 0)), ckpt, w.metadata
    if config.init:
        w = load_weights(config.init)
        if abs(w.width_factor - config.width_factor) > 1e-9:
            raise TrainingDataError(f"{config.init}: width factor {w.width_factor} differs "
                                    f"from --width-factor {config.width_factor}")
        model.set_weights(w.tensors)
        return 0, None, w.metadata
    training_init(model, config.seed)
    return 0, None, {}


def load_training_data(config: TrainConfig,
                       log: Callable[[str], None]) -> tuple[SampleSource, list[dict]]:
    """The training sample source and the fixed validation batches (empty without --val)."""
    def scenes_of(folder: str):
        return load_scenes(folder, crop=config.crop, mode=config.data_mode,
                           panorama=config.panorama, ldr_linearize=config.ldr_linearize,
                           max_side=config.max_side)

    log(f"loading training scenes from {config.data}")
    scenes = scenes_of(config.data)
    n_pano = sum(s.panorama for s in scenes)
    log(f"{len(scenes)} scenes ({n_pano} panoramas, {len(scenes) - n_pano} photos)")
    val_batches = []
    if config.val:
        val_scenes = scenes_of(config.val)
        val_batches = SampleSource(val_scenes, config.camera, config.seed,
                                   VAL_STREAM).fixed_batches(config.val_samples, config.batch_size)
        log(f"{len(val_scenes)} validation scenes, {config.val_samples} fixed samples")
    return SampleSource(scenes, config.camera, config.seed, TRAIN_STREAM), val_batches


def restore_optimizer(trainer: "Trainer", ckpt: Path, log: Callable[[str], None]) -> float:
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


def train(config: TrainConfig, *, stop: StopFlag | None = None,
          progress: bool = True, log: Callable[[str], None] = print) -> TrainResult:
    """Train (or resume) a run; returns where the final weights are."""
    import tensorflow as tf

    from ..model import HDRCNN

    stop = stop if stop is not None else StopFlag()
    out = Path(config.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)

    source, val_batches = load_training_data(config, log)
    baseline = (baseline_loss(val_batches, config.loss, config.linearize)
                if val_batches else None)
    if baseline is not None:
        log(f"validation loss of the linearised input, no reconstruction: {baseline:.4g} "
            "(a useful model goes below it)")

    per_epoch = steps_per_epoch(config, len(source.scenes))
    end = total_steps(config, per_epoch)
    model = HDRCNN(config.width_factor)
    start, ckpt, _ = initial_weights(config, model)
    trainer = Trainer(model, crop=config.crop, loss=config.loss,
                      regularization=config.regularization, reg_weight=config.reg_weight,
                      beta1=config.beta1, beta2=config.beta2, lr=config.lr)
    seconds_before = 0.0
    if ckpt is not None:
        seconds_before = restore_optimizer(trainer, ckpt, log)
        log(f"resuming from {ckpt} at step {start}")

    settings = config.to_dict()
    settings.update(scenes=len(source.scenes), steps_per_epoch=per_epoch, total_steps=end,
                    val_loss_baseline=baseline,
                    git_commit=git_commit(), started=_dt.datetime.now(_dt.timezone.utc)
                    .isoformat(timespec="seconds"), tensorflow=tf.__version__)
    write_json(out / "run.json", settings)

    writer = None
    if config.tensorboard:
        writer = tensorboard_writer(out / "tensorboard")

    def make_batch(step: int) -> dict:
        batch = source.batch(step, config.batch_size)
        if config.regularization != "none":
            batch.update(regularization_inputs(config, step, config.batch_size))
        return batch

    metadata = dict(data=str(config.data), seed=config.seed, crop=config.crop,
                    batch_size=config.batch_size, width_factor=config.width_factor,
                    loss=config.loss, regularization=config.regularization, lr=config.lr,
                    camera=config.camera.to_dict(), git_commit=settings["git_commit"],
                    trained_by="hdrcnn train")

    def save_weights(path: Path, step: int) -> None:
        w = Weights([t.copy() for t in model.get_weights()], config.width_factor,
                    config.linearize, source=str(path))
        write_weights(w, path, step=step,
                      date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                      **metadata)

    def save_checkpoint(step: int, seconds: float) -> Path:
        path = checkpoint_path(out, step)
        save_weights(path, step)
        save_npz(optimizer_path(path), {**trainer.optimizer.state(),
                                        "step": np.array(step), "seconds": np.array(seconds)})
        if config.keep_checkpoints > 0:
            for _, old in list_checkpoints(out)[:-config.keep_checkpoints]:
                for f in (old, optimizer_path(old)):
                    if f.exists():
                        f.unlink()
        return path

    def record(step: int, losses: list[float], lr: float, seconds: float,
               val: float | None, images: np.ndarray | None) -> None:
        """One row of train_log.csv, TensorBoard and (without a progress bar) the console."""
        mean = float(np.mean(losses))
        append_log_row(out / "train_log.csv", {
            "step": step, "loss": f"{mean:.6g}", "lr": f"{lr:.6g}", "seconds": f"{seconds:.1f}",
            "val_loss": f"{val:.6g}" if val is not None else ""})
        if writer is not None:
            write_summaries(writer, step, {"loss": mean, "learning_rate": lr,
                                           **({"val_loss": val} if val is not None else {})},
                            images)
        if bar is None:
            log(f"step {step}/{end} loss {mean:.4g}"
                + (f" val {val:.4g}" if val is not None else "") + f" {seconds:.0f}s")

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
            if stop:
                break
            trainer.lr.assign(learning_rate(config, step_index, per_epoch))
            last_loss = trainer.run_step(batch)
            if not math.isfinite(last_loss):
                raise FloatingPointError(f"loss became {last_loss} at step {step_index + 1}; "
                                         "lower --lr")
            window.append(last_loss)
            step = step_index + 1
            seconds = seconds_before + time.monotonic() - t0
            do_val = bool(val_batches) and (step % config.val_every == 0 or step == end)
            if do_val:
                val_loss = trainer.evaluate(val_batches)
            if step % config.log_every == 0 or do_val or step == end:
                images = (validation_images(trainer, val_batches[0])
                          if do_val and writer is not None else None)
                record(step, window, float(trainer.lr.numpy()), seconds,
                       val_loss if do_val else None, images)
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
    if step > start or not list_checkpoints(out):
        save_checkpoint(step, seconds)
    final = out / "weights.npz"
    save_weights(final, step)
    if config.export_authors:
        w = Weights(model.get_weights(), config.width_factor, config.linearize)
        write_authors_npz(w, out / "weights_authors.npz")
    if stop:
        log(f"{stop.set_reason} at step {step}; saved {final} (resume with --resume {out})")
    return TrainResult(final, step, last_loss, val_loss, seconds, stop.set_reason, baseline)


def baseline_loss(batches: list[dict], loss: str, linearize: str) -> float:
    """The loss of predicting the linearised input itself (`ldr_linear`): the level a trained
    model must beat to have reconstructed anything."""
    from ..architecture import LOG_EPS
    from ..reconstruct import linearize_pixels
    from .losses import reconstruction_loss

    total, count = 0.0, 0
    for b in batches:
        y_log = np.log(linearize_pixels(b["x"], linearize) + LOG_EPS).astype(np.float32)
        total += float(reconstruction_loss(loss, y_log, b["y"])) * len(b["x"])
        count += len(b["x"])
    return total / max(count, 1)


def validation_images(trainer: Trainer, batch: dict, n: int = 4) -> np.ndarray:
    y_log = trainer.predict(batch["x"][:n]).numpy()
    return np.stack([preview_image(batch["x"][i], batch["y"][i], y_log[i])
                     for i in range(len(y_log))])


def write_preview(config: TrainConfig, n: int, out_dir: str | os.PathLike) -> list[Path]:
    """n sample pairs from the camera: PNG of input | target (2 stops down) and the EXR target."""
    from ..image_io import write_exr, write_png

    scenes = load_scenes(config.data, crop=config.crop, mode=config.data_mode,
                         panorama=config.panorama, ldr_linearize=config.ldr_linearize,
                         max_side=config.max_side)
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
