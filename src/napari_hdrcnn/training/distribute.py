"""Training on several replicas: which `tf.distribute` strategy, this worker's place in the
cluster, and how the global batch is split.

Everything here but `make_strategy` works without TensorFlow, so the settings can be checked
(and tested) before TensorFlow starts.

Vocabulary: a *worker* is one `hdrcnn train` process (one machine, usually); a *replica* is one
device training a slice of the batch (a GPU, or the CPU). MirroredStrategy: one worker, several
replicas. MultiWorkerMirroredStrategy: several workers, each with its local replicas, described
by the `TF_CONFIG` environment variable that every worker gets (the same cluster, its own task).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from .data import SampleSource

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
