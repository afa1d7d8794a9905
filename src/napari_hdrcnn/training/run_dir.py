"""The run folder of `hdrcnn train`: its layout, and everything read from or written to it.

Layout (everything but the log rows and TensorBoard's events written atomically):
    run.json                      the settings of the run
    train_log.csv                 step, loss, val_loss, lr, seconds
    weights.npz                   final (or last interrupted) weights, project format
    weights_authors.npz           optional, the authors' layout
    checkpoints/step_XXXXXX.npz   weights at a step (project format, metadata holds the step)
    checkpoints/step_XXXXXX.adam.npz  Adam's moments and step count beside it
    tensorboard/                  optional TensorBoard event files
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import re
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write
from ..weights import Weights, write_authors_npz, write_weights
from .data import TrainingDataError

CHECKPOINT_RE = re.compile(r"^step_(\d+)\.npz$")
LOG_FIELDS = ("step", "loss", "val_loss", "lr", "seconds")


class RunDirectory:
    """One run folder: where each file goes, and reading and writing them."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self.settings_file = self.path / "run.json"
        self.log_file = self.path / "train_log.csv"
        self.weights_file = self.path / "weights.npz"
        self.authors_weights_file = self.path / "weights_authors.npz"
        self.tensorboard_folder = self.path / "tensorboard"

    def checkpoint_file(self, step: int) -> Path:
        return checkpoint_path(self.path, step)

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    # -- reading --
    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, file) of every checkpoint, oldest first."""
        return list_checkpoints(self.path)

    # -- writing --
    def write_settings(self, settings: dict) -> None:
        write_json(self.settings_file, settings)

    def append_log(
        self, step: int, loss: float, lr: float, seconds: float, val_loss: float | None
    ) -> None:
        """One row of train_log.csv (its header first, in a new file)."""
        append_log_row(
            self.log_file,
            {
                "step": step,
                "loss": f"{loss:.6g}",
                "lr": f"{lr:.6g}",
                "seconds": f"{seconds:.1f}",
                "val_loss": f"{val_loss:.6g}" if val_loss is not None else "",
            },
        )

    def save_checkpoint(
        self,
        weights: Weights,
        optimizer_state: dict[str, np.ndarray],
        step: int,
        seconds: float,
        keep: int,
        **metadata,
    ) -> Path:
        """Weights and optimizer state at `step`; then only the `keep` latest checkpoints stay
        (all with keep 0)."""
        path = self.checkpoint_file(step)
        save_weights(weights, path, step, **metadata)
        save_npz(
            optimizer_path(path),
            {**optimizer_state, "step": np.array(step), "seconds": np.array(seconds)},
        )
        if keep > 0:
            for _, old in self.checkpoints()[:-keep]:
                for f in (old, optimizer_path(old)):
                    if f.exists():
                        f.unlink()
        return path

    def save_authors_weights(self, weights: Weights) -> None:
        write_authors_npz(weights, self.authors_weights_file)

    def tensorboard_writer(self):
        """A TensorBoard file writer in tensorboard/ (imports TensorFlow)."""
        return tensorboard_writer(self.tensorboard_folder)


def save_weights(weights: Weights, path: Path, step: int, **metadata) -> None:
    """A weight file of the run (project format), its metadata stamped with step and date."""
    write_weights(
        weights,
        path,
        step=step,
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **metadata,
    )


# -- checkpoints ----------------------------------------------------------------------------------
def checkpoint_path(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"step_{step:06d}.npz"


def optimizer_path(ckpt: Path) -> Path:
    """The optimizer state beside a checkpoint file."""
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


def has_checkpoint(path: str | os.PathLike) -> bool:
    p = Path(path).expanduser()
    return p.is_file() or bool(list_checkpoints(p))


def load_optimizer_state(ckpt: Path) -> dict[str, np.ndarray] | None:
    """The optimizer state saved beside a checkpoint; None if there is none."""
    opt_file = optimizer_path(ckpt)
    if not opt_file.is_file():
        return None
    with np.load(opt_file, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# -- files ----------------------------------------------------------------------------------------
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


# -- TensorBoard ----------------------------------------------------------------------------------
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
