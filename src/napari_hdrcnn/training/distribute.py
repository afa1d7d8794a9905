"""Training on several replicas: which `tf.distribute` strategy, this worker's place in the
cluster, how the global batch is split, the replicated step (`DistributedTrainer`, with batch
norm synchronised across replicas) and the collectives that keep the workers in step (the
chief's weights and settings on every worker).

Importing this module does not import TensorFlow: the strategy, cluster and batch settings can
be checked (and tested) before TensorFlow starts; `make_strategy`, the replicated model and
step and the collectives import it when used.

Vocabulary: a *worker* is one `hdrcnn train` process (one machine, usually); a *replica* is one
device training a slice of the batch (a GPU, or the CPU). MirroredStrategy: one worker, several
replicas. MultiWorkerMirroredStrategy: several workers, each with its local replicas, described
by the `TF_CONFIG` environment variable that every worker gets (the same cluster, its own task).
"""

from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .data import SampleSource
from .trainer import Trainer, step_inputs

if TYPE_CHECKING:
    from .config import TrainConfig

STRATEGIES = ("auto", "none", "mirrored", "multi-worker")
TASK_TYPES = ("chief", "worker")  # the jobs MultiWorkerMirroredStrategy trains with


class DistributeError(ValueError):
    """A strategy that cannot run with these settings; the message says which and why."""


@dataclass(frozen=True)
class Cluster:
    """What TF_CONFIG says: every worker's address, and which one this process is."""

    chief: tuple[str, ...]  # at most one address (the optional "chief" job)
    workers: tuple[str, ...]
    task_type: str
    task_index: int

    @property
    def num_workers(self) -> int:
        return len(self.chief) + len(self.workers)

    @property
    def rank(self) -> int:
        """0 for the chief, then the workers in order: TensorFlow's `id_in_cluster`, which
        also numbers the replicas (worker r holds replicas r*k .. r*k+k-1)."""
        if self.task_type == "chief":
            return 0
        return self.task_index + len(self.chief)

    @property
    def is_chief(self) -> bool:
        """The "chief" task if the cluster has one, else worker 0 (TensorFlow's convention)."""
        return self.rank == 0


def parse_tf_config(text: str | None) -> Cluster | None:
    """TF_CONFIG's JSON -> Cluster; None when it is unset or empty. Anything malformed raises
    DistributeError saying what is wrong."""
    if text is None or not text.strip():
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise DistributeError(
            f"TF_CONFIG is not valid JSON ({err.msg} at line {err.lineno} "
            f"column {err.colno}): {text!r}"
        ) from None
    if not isinstance(config, dict):
        raise DistributeError(
            f"TF_CONFIG must be a JSON object with 'cluster' and 'task', "
            f"got {type(config).__name__}"
        )
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise DistributeError(
            "TF_CONFIG has no 'cluster' object (e.g. {\"cluster\": "
            '{"worker": ["host1:12345", "host2:12345"]}, ...})'
        )
    jobs = {}
    for job, addresses in cluster.items():
        if job not in TASK_TYPES:
            raise DistributeError(
                f"TF_CONFIG cluster job {job!r} is not supported (only "
                f"{' and '.join(TASK_TYPES)}: training is synchronous, "
                "without parameter servers or evaluators)"
            )
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(isinstance(a, str) and _is_address(a) for a in addresses)
        ):
            raise DistributeError(
                f"TF_CONFIG cluster {job!r} must be a non-empty list of "
                f'"host:port" strings, got {addresses!r}'
            )
        jobs[job] = tuple(addresses)
    if len(jobs.get("chief", ())) > 1:
        raise DistributeError(f"TF_CONFIG may name one chief, got {len(jobs['chief'])}")
    every = jobs.get("chief", ()) + jobs.get("worker", ())
    if len(set(every)) != len(every):
        raise DistributeError(f"TF_CONFIG names an address twice: {list(every)}")
    if not isinstance(task, dict):
        raise DistributeError(
            'TF_CONFIG has no \'task\' object (e.g. {"task": {"type": "worker", "index": 0}})'
        )
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in jobs:
        raise DistributeError(
            f"TF_CONFIG task type {task_type!r} is not a job of the cluster ({', '.join(jobs)})"
        )
    if (
        isinstance(index, bool)
        or not isinstance(index, int)
        or not (0 <= index < len(jobs[task_type]))
    ):
        raise DistributeError(
            f"TF_CONFIG task index {index!r} is out of range for the "
            f"{len(jobs[task_type])} {task_type} address(es)"
        )
    return Cluster(jobs.get("chief", ()), jobs.get("worker", ()), task_type, index)


def _is_address(text: str) -> bool:
    host, sep, port = text.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)


def choose_strategy(requested: str, cluster: Cluster | None, gpu_count: int) -> str:
    """--strategy -> the strategy to run: "none", "mirrored" or "multi-worker".

    auto: multi-worker when TF_CONFIG names more than one worker, mirrored when this machine
    has more than one GPU, else none (the single-device path).
    """
    if requested not in STRATEGIES:
        raise DistributeError(f"unknown strategy {requested!r}; one of {', '.join(STRATEGIES)}")
    if requested == "auto":
        if cluster is not None and cluster.num_workers > 1:
            return "multi-worker"
        return "mirrored" if gpu_count > 1 else "none"
    if requested == "multi-worker" and cluster is None:
        raise DistributeError(
            "--strategy multi-worker needs the TF_CONFIG environment "
            "variable naming the cluster and this worker's task"
        )
    return requested


def per_replica_batch(global_batch: int, replicas: int) -> int:
    """--batch-size is the global batch; each replica trains on an equal slice of it."""
    if replicas < 1:
        raise DistributeError(f"need at least one replica, got {replicas}")
    if global_batch % replicas:
        raise DistributeError(
            f"--batch-size {global_batch} cannot be split evenly across "
            f"{replicas} replicas: use a multiple of {replicas}"
        )
    return global_batch // replicas


class WorkerSampleSource(SampleSource):
    """A SampleSource whose batches differ between workers.

    Rank 0 draws exactly the single-device samples (key (seed, stream, step)), so a one-worker
    MirroredStrategy run sees the same data as a run without a strategy; worker r > 0 adds r to
    the key. The model's initialisation uses the unchanged seed on every worker.
    """

    def __init__(self, source: SampleSource, rank: int):
        super().__init__(source.scenes, source.settings, source.seed, source.stream)
        self.rank = int(rank)

    def rng(self, step: int) -> np.random.Generator:
        if self.rank == 0:
            return super().rng(step)
        return np.random.default_rng([self.seed, self.stream, int(step), self.rank])


def current_cluster() -> Cluster | None:
    return parse_tf_config(os.environ.get("TF_CONFIG"))


def make_strategy(name: str):
    """The tf.distribute strategy for a chosen name (None for "none"); imports TensorFlow.

    mirrored: every visible GPU, or, with none, every logical CPU device (tests split the CPU
    into two). multi-worker: TF_CONFIG's cluster, with this machine's GPUs (or its CPU).
    """
    if name == "none":
        return None
    import tensorflow as tf

    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise DistributeError(f"unknown strategy {name!r}")


@dataclass(frozen=True)
class Replication:
    """How this process trains: its strategy ("none", "mirrored" or "multi-worker"), the
    tf.distribute strategy object (None for one device), and, multi-worker, the cluster and
    this worker's rank in it (the chief is rank 0)."""

    name: str
    strategy: object = None
    cluster: Cluster | None = None

    @classmethod
    def start(cls, name: str) -> Replication:
        """Make the strategy; call it before any TensorFlow op (multi-worker needs it)."""
        strategy = make_strategy(name)
        return cls(name, strategy, current_cluster() if name == "multi-worker" else None)

    @property
    def rank(self) -> int:
        return self.cluster.rank if self.cluster is not None else 0

    @property
    def chief(self) -> bool:
        """The worker that writes the run folder (the only one without a cluster)."""
        return self.rank == 0

    @property
    def workers(self) -> int:
        return self.cluster.num_workers if self.cluster is not None else 1

    def worker_source(self, source: SampleSource) -> SampleSource:
        """This worker's samples: the chief draws the single-device ones, the others their own."""
        return WorkerSampleSource(source, self.rank) if self.rank else source

    def check_same_settings(self, config: TrainConfig, per_epoch: int, end: int) -> None:
        """Multi-worker: raise on every worker unless all train with the chief's settings."""
        if self.cluster is not None:
            check_same_settings(
                self.strategy, shared_settings(config, self.strategy, per_epoch, end)
            )


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
