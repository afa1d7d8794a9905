"""The training run: `train()` sets a run up, takes its steps and saves what it made.

The parts live beside it: `config` (the settings and the schedule), `trainer` (Adam and the
compiled step), `distribute` (several replicas or workers), `run_dir` (the run folder's files:
weights, checkpoints, train_log.csv, run.json, TensorBoard), `data` (samples, prefetching).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..weights import Weights, load_weights, weight_defaults
from .config import TrainConfig, learning_rate, steps_per_epoch, total_steps
from .data import (
    PREVIEW_STREAM,
    TRAIN_STREAM,
    VAL_STREAM,
    Prefetcher,
    SampleSource,
    TrainingDataError,
    load_scenes,
)
from .distribute import DistributedTrainer, Replication, synced_batch_norm_model
from .run_dir import (
    RunDirectory,
    find_checkpoint,
    has_checkpoint,
    load_optimizer_state,
    optimizer_path,
    save_weights,
    write_summaries,
)
from .trainer import Trainer, regularization_inputs
from .widen import widened_tensors

__all__ = [
    "StopFlag",
    "TrainConfig",
    "TrainResult",
    "baseline_loss",
    "preview_image",
    "train",
    "write_preview",
]


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
    replication = Replication.start(strategy)  # before any TensorFlow op (multi-worker needs it)
    if not replication.chief:
        log = _prefixed(log, f"[worker {replication.rank}] ")
        progress = False
    run = TrainingRun(config, replication, stop if stop is not None else StopFlag(), log)
    run.take_steps(progress)
    return run.finish(worker_out)


class TrainingRun:
    """One `train()`: made ready by the constructor (data, trainer, run.json), then
    `take_steps`, then `finish`. Only the chief (`chief`) writes to the run folder."""

    def __init__(
        self,
        config: TrainConfig,
        replication: Replication,
        stop: StopFlag,
        log: Callable[[str], None],
    ):
        self.config, self.replication, self.stop, self.log = config, replication, stop, log
        self.chief = replication.chief
        self.run_dir = RunDirectory(config.out)
        if self.chief:
            self.run_dir.create()
        self.source, self.val_batches = self._load_data()
        self.baseline = self._validation_baseline()
        self.per_epoch = steps_per_epoch(config, len(self.source.scenes))
        self.end = total_steps(config, self.per_epoch)
        replication.check_same_settings(config, self.per_epoch, self.end)
        self.trainer, self.start, self.seconds_before = self._start_trainer()
        self.distributed = isinstance(self.trainer, DistributedTrainer)
        self.settings = self._settings()
        if self.chief:
            self.run_dir.write_settings(self.settings)
        self.tensorboard = (
            self.run_dir.tensorboard_writer() if config.tensorboard and self.chief else None
        )
        self.metadata = weight_metadata(config, self.settings["git_commit"])
        # A fine-tune's weights are used as the file it started from is: a run from the
        # default (blend "consistent") scored with the authors' "max" blend lost 0.4-0.6 dB
        self.blend = weight_defaults(config.init)[1] if config.init else Weights.blend
        # where the steps stand
        self.step = self.start
        self.window: list[float] = []  # losses since the last log row
        self.last_loss = float("nan")
        self.val_loss: float | None = None
        self.bar = None
        self.t0 = time.monotonic()

    # -- set-up --
    def _load_data(self) -> tuple[SampleSource, list[dict]]:
        source, val_batches = load_training_data(self.config, self.log, validation=self.chief)
        return self.replication.worker_source(source), val_batches

    def _validation_baseline(self) -> float | None:
        if not self.val_batches:
            return None
        config = self.config
        baseline = baseline_loss(
            self.val_batches,
            config.loss,
            config.linearize,
            config.loss_mask,
            (config.over_boost_weight, config.over_boost_stops),
        )
        self.log(
            f"validation loss of the linearised input, no reconstruction: {baseline:.4g} "
            "(a useful model goes below it)"
        )
        return baseline

    def _start_trainer(self) -> tuple[Trainer, int, float]:
        """The trainer with its starting weights and optimizer state: (trainer, start step,
        training seconds before this call)."""
        replication = self.replication
        trainer, start, ckpt = make_trainer(
            self.config, replication.strategy, chief=self.chief, log=self.log
        )
        seconds_before = 0.0
        if ckpt is not None:
            seconds_before = restore_optimizer(trainer, ckpt, self.log)
            self.log(f"resuming from {ckpt} at step {start}")
        if replication.cluster is not None:
            start = trainer.sync_with_chief(start)
        return trainer, start, seconds_before

    def _settings(self) -> dict:
        """run.json: the configuration and what the run found out about itself."""
        import tensorflow as tf

        config, trainer = self.config, self.trainer
        settings = config.to_dict()
        settings.update(
            scenes=len(self.source.scenes),
            steps_per_epoch=self.per_epoch,
            total_steps=self.end,
            val_loss_baseline=self.baseline,
            git_commit=git_commit(),
            started=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            tensorflow=tf.__version__,
        )
        if self.distributed:
            strategy = self.replication.name
            settings.update(
                strategy=strategy,
                replicas=trainer.replicas,
                per_replica_batch=trainer.per_replica,
                workers=self.replication.workers,
            )
            self.log(
                f"{strategy} strategy: {trainer.replicas} replicas, {trainer.per_replica} "
                f"samples each of the global batch of {config.batch_size}"
            )
        return settings

    # -- the steps --
    def take_steps(self, progress: bool) -> None:
        """Train from the start step to the end, or until a stop: a signal or the caller, the
        time limit, another worker, Ctrl-C."""
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=self.end, initial=self.start, unit="step", dynamic_ncols=True)
        self.t0 = time.monotonic()
        minutes = self.config.max_minutes
        deadline = self.t0 + minutes * 60 if minutes else None
        prefetch = Prefetcher(self._batch, self.start, self.end)
        try:
            for step_index, batch in prefetch:
                if self.stop and not self.distributed:
                    break
                others_stop = self._optimise(step_index, batch)
                self.step = step_index + 1
                self._after_step()
                if deadline is not None and time.monotonic() > deadline:
                    self.stop.set("time limit reached")
                if others_stop:
                    if not self.stop:
                        self.stop.set("stopped by another worker")
                    break
        except KeyboardInterrupt:
            self.stop.set("interrupted")
        finally:
            prefetch.close()
            if self.bar is not None:
                self.bar.close()
            if self.tensorboard is not None:
                self.tensorboard.flush()

    def _batch(self, step: int) -> dict:
        """This worker's batch of a step (run ahead by the prefetcher)."""
        trainer, config = self.trainer, self.config
        n = trainer.local_batch if self.distributed else config.batch_size
        batch = self.source.batch(step, n)
        if config.regularization != "none":
            batch.update(regularization_inputs(config, step, n, self.replication.rank))
        return batch

    def _optimise(self, step_index: int, batch: dict) -> bool:
        """One optimisation step. Returns whether any worker asked to stop (distributed: a stop
        is voted on in the step, so that every worker stops after the same one)."""
        trainer = self.trainer
        trainer.lr.assign(learning_rate(self.config, step_index, self.per_epoch))
        if self.distributed:
            loss, any_stop = trainer.run_step(batch, stop=bool(self.stop))
        else:
            loss, any_stop = trainer.run_step(batch), False
        self.last_loss = loss
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss became {loss} at step {step_index + 1}; lower --lr")
        self.window.append(loss)
        return any_stop

    def _after_step(self) -> None:
        """Validation, a log row, the progress bar and a checkpoint, each when it is due."""
        config, step = self.config, self.step
        seconds = self._seconds()
        validate = bool(self.val_batches) and (step % config.val_every == 0 or step == self.end)
        if validate:
            self.val_loss = self.trainer.evaluate(self.val_batches)
        if step % config.log_every == 0 or validate or step == self.end:
            images = None
            if validate and self.tensorboard is not None:
                images = validation_images(self.trainer, self.val_batches[0])
            self._record(seconds, self.val_loss if validate else None, images)
            self.window = []
        self._update_bar()
        if step % config.checkpoint_every == 0 and step != self.end:
            self._save_checkpoint(seconds)

    def _seconds(self) -> float:
        """Training seconds so far, across resumes."""
        return self.seconds_before + time.monotonic() - self.t0

    def _record(self, seconds: float, val: float | None, images: np.ndarray | None) -> None:
        """The chief's row of train_log.csv, TensorBoard and (without a progress bar) the
        console, for the losses of the window."""
        if not self.chief:
            return
        step, mean = self.step, float(np.mean(self.window))
        lr = float(self.trainer.lr.numpy())
        self.run_dir.append_log(step, mean, lr, seconds, val)
        if self.tensorboard is not None:
            scalars = {"loss": mean, "learning_rate": lr}
            if val is not None:
                scalars["val_loss"] = val
            write_summaries(self.tensorboard, step, scalars, images)
        if self.bar is None:
            self.log(
                f"step {step}/{self.end} loss {mean:.4g}"
                + (f" val {val:.4g}" if val is not None else "")
                + f" {seconds:.0f}s"
            )

    def _update_bar(self) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        post = {"loss": f"{self.last_loss:.4g}"}
        if self.val_loss is not None:
            post["val"] = f"{self.val_loss:.4g}"
        self.bar.set_postfix(post, refresh=False)

    def _save_checkpoint(self, seconds: float) -> None:
        if self.chief:
            self.run_dir.save_checkpoint(
                self._weights(),
                self.trainer.optimizer.state(),
                self.step,
                seconds,
                self.config.keep_checkpoints,
                **self.metadata,
            )

    def _weights(self) -> Weights:
        """A copy of the model's weights now."""
        model = self.trainer.model
        return Weights(
            [t.copy() for t in model.get_weights()],
            self.config.width_factor,
            self.config.linearize,
            blend=self.blend,
            source=str(self.run_dir.path),
        )

    # -- the end --
    def finish(self, worker_out: str | os.PathLike | None) -> TrainResult:
        """The last log row and checkpoint, the final weights; what the run came to."""
        seconds = self._seconds()
        if self.window:  # steps since the last log row (a stop between rows)
            self._record(seconds, None, None)
        if self.tensorboard is not None:
            self.tensorboard.flush()
        if self.chief and (self.step > self.start or not self.run_dir.checkpoints()):
            self._save_checkpoint(seconds)
        final = self._save_final_weights(worker_out)
        stop, step = self.stop, self.step
        if stop:
            self.log(
                f"{stop.set_reason} at step {step}; saved {final} "
                f"(resume with --resume {self.run_dir.path})"
            )
        return TrainResult(
            final, step, self.last_loss, self.val_loss, seconds, stop.set_reason, self.baseline
        )

    def _save_final_weights(self, worker_out: str | os.PathLike | None) -> Path:
        """weights.npz in the run folder (the chief), or in `worker_out` (another worker, if
        given); the authors' layout too with export_authors."""
        final = self.run_dir.weights_file
        if self.chief:
            save_weights(self._weights(), final, self.step, **self.metadata)
        elif worker_out is not None:
            final = Path(worker_out).expanduser() / "weights.npz"
            final.parent.mkdir(parents=True, exist_ok=True)
            save_weights(self._weights(), final, self.step, **self.metadata)
        if self.config.export_authors and self.chief:
            model = self.trainer.model
            w = Weights(model.get_weights(), self.config.width_factor, self.config.linearize)
            self.run_dir.save_authors_weights(w)
        return final


def _prefixed(log: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda message: log(prefix + message)


def weight_metadata(config: TrainConfig, commit: str | None) -> dict:
    """What every weight file of a run records about how it was trained."""
    return dict(
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
        git_commit=commit,
        trained_by="hdrcnn train",
        # the starting weights (widened first when narrower than the run's width)
        **({"init": str(config.init)} if config.init else {}),
    )


def restore_optimizer(trainer: Trainer, ckpt: Path, log: Callable[[str], None]) -> float:
    """Adam's state saved beside a checkpoint, if there; returns the training seconds so far."""
    state = load_optimizer_state(ckpt)
    if state is None:
        log(f"{optimizer_path(ckpt).name} not found: Adam restarts from zero moments")
        return 0.0
    trainer.optimizer.load_state(state, str(optimizer_path(ckpt)))
    return float(state.get("seconds", 0.0))


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
        tensors = w.tensors
        if w.width_factor > config.width_factor + 1e-9:
            raise TrainingDataError(
                f"{config.init}: width factor {w.width_factor} is wider than "
                f"--width-factor {config.width_factor} (a network can be widened, not narrowed)"
            )
        if w.width_factor < config.width_factor - 1e-9:
            # a wider network that starts as the trained one (training.widen)
            tensors = widened_tensors(tensors, w.width_factor, config.width_factor, config.seed)
        model.set_weights(tensors)
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


def preview_image(x: np.ndarray, y: np.ndarray, y_log: np.ndarray | None) -> np.ndarray:
    """Input | target | prediction side by side, linear values shown 2 stops down, gamma 2.2."""
    from ..architecture import LOG_EPS, blend_alpha

    show = lambda lin: np.clip(lin * 0.25, 0, 1) ** (1 / 2.2)  # noqa: E731
    panels = [x, show(y)]
    if y_log is not None:
        alpha = blend_alpha(x.max(-1, keepdims=True))
        panels.append(show((1 - alpha) * x**2.2 + alpha * (np.exp(y_log) - LOG_EPS)))
    return np.concatenate(panels, axis=1).astype(np.float32)


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
