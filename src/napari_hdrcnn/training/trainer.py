"""One device's optimisation step: Adam as the authors ran it, and `Trainer`, the model with its
compiled train and evaluation steps (TensorFlow, imported when a Trainer is made).
`distribute.DistributedTrainer` runs the same step on several replicas."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .data import TrainingDataError

if TYPE_CHECKING:
    from .config import TrainConfig

REG_STREAM = 3  # random stream of the regularisation's motions and noise (data.py: the others)


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
