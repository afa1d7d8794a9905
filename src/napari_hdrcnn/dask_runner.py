"""Spreading frames over a Dask cluster (dask.distributed).

Each worker loads the model once, when `ModelPlugin` is set up on it (also on a worker that
joins or is restarted later), and keeps it for every frame it is sent. The plugin carries the
weights themselves, so names like `default` and files on the client's disk work on any worker.

Frames are submitted in order with at most `window` in flight and handed back in order, so a
long video never sits in memory. Video frames travel as pixels, image-sequence frames as paths.
Workers write the outputs themselves, atomically, into the output folder. A worker that dies
takes no frame with it: the scheduler runs its tasks again elsewhere, and the temp file it may
have left is removed at the end of the run (`frame_jobs.remove_stale_temps`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from distributed import WorkerPlugin

from .frame_jobs import (
    FRAME_ERRORS,
    FrameOutcome,
    OutputSpec,
    describe_error,
    reconstruct_frame,
    skipped,
)
from .options import ReconstructOptions
from .weights import Weights

# Tasks that raise something other than a frame error (a full disk, a lost file system) are
# tried this many more times; a worker that dies is handled by the scheduler, which runs its
# tasks elsewhere (up to distributed's `allowed-failures` deaths per task).
RETRIES = 1
PLUGIN_PREFIX = "napari-hdrcnn-model-"

# On a worker: model key -> Reconstructor, filled by ModelPlugin.setup.
_WORKER_MODELS: dict = {}


def model_key(weights: Weights, options: ReconstructOptions) -> str:
    digest = weights.metadata.get("sha256")
    if not digest:
        h = hashlib.sha256()
        for t in weights.tensors:
            h.update(np.ascontiguousarray(t).tobytes())
        digest = h.hexdigest()
    return "-".join([digest[:16], *options.build_fields().values()])


class ModelPlugin(WorkerPlugin):
    """Builds the model on a worker once and keeps it under its key."""

    def __init__(self, weights: Weights, options: ReconstructOptions):
        self.weights = weights
        self.options = options
        self.key = model_key(weights, options)

    def setup(self, worker) -> None:
        from .reconstruct import Reconstructor

        reconstructor = Reconstructor(self.weights, self.options)
        reconstructor.run(np.zeros((64, 64, 3), np.uint8))  # build and trace now, not on frame 1
        _WORKER_MODELS[self.key] = reconstructor

    def teardown(self, worker) -> None:
        _WORKER_MODELS.pop(self.key, None)


def register_model(client, weights: Weights, options: ReconstructOptions) -> str:
    """Load the model on every worker (now and on later ones) unless it is there already."""
    plugin = ModelPlugin(weights, options)
    name = PLUGIN_PREFIX + plugin.key

    def has_plugin(dask_worker, _name=name):
        return _name in dask_worker.plugins

    loaded = client.run(has_plugin)
    if not loaded or not all(loaded.values()):
        client.register_plugin(plugin, name=name)
    return plugin.key


@dataclass(frozen=True)
class FrameFailure:
    """A worker's answer for a frame that cannot be reconstructed (not worth a retry)."""

    message: str
    exception: Exception | None = None


def reconstruct_on_worker(key: str, frame, options: ReconstructOptions, spec: OutputSpec | None):
    """The task: one frame (`video_io.Frame`: pixels, or a path read here) with the worker's
    model; writes the outputs when given a spec."""
    reconstructor = _WORKER_MODELS.get(key)
    if reconstructor is None:
        raise RuntimeError(f"model {key} is not loaded on this worker")
    try:
        return reconstruct_frame(
            reconstructor, frame.read(), frame.index + 1, frame.name, options, spec
        )
    except FRAME_ERRORS as err:
        return FrameFailure(describe_error(frame.name, err), err)


def worker_count(client) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))


@dataclass
class ClusterBackend:
    """Frames reconstructed on a Dask cluster (the model loaded once per worker), handed back
    in frame order; at most `window` frames (default 2 per worker) are between submission and
    hand-back at any time."""

    client: object
    weights: Weights
    window: int | None = None

    def outcomes(
        self,
        frames: Iterable,
        options: ReconstructOptions,
        spec: OutputSpec | None,
        overwrite: bool = False,
    ) -> Iterator[FrameOutcome]:
        return _cluster_outcomes(
            self.client, frames, self.weights, options, spec, overwrite, self.window
        )


def _cluster_outcomes(
    client,
    frames: Iterable,
    weights: Weights,
    options: ReconstructOptions,
    spec: OutputSpec | None,
    overwrite: bool,
    window: int | None,
) -> Iterator[FrameOutcome]:
    key = register_model(client, weights, options)
    window = max(1, window or 2 * worker_count(client))
    run_id = uuid.uuid4().hex[:8]
    it = iter(frames)
    slots: deque = deque()  # (outcome, future or None), in frame order

    def fill() -> None:
        while len(slots) < window:
            frame = next(it, None)
            if frame is None:
                return
            skip = skipped(frame, spec, overwrite)
            if skip is not None:
                slots.append((skip, None))
                continue
            number = frame.index + 1
            if frame.path is not None and not frame.path.is_absolute():
                frame = dataclasses.replace(frame, path=frame.path.absolute())
            future = client.submit(
                reconstruct_on_worker,
                key,
                frame,
                options,
                spec,
                pure=False,
                retries=RETRIES,
                key=f"hdrcnn-frame-{number:06d}-{run_id}",
            )
            slots.append((FrameOutcome(number, frame.name, "done", frame), future))

    fill()
    try:
        while slots:
            outcome, future = slots.popleft()
            if future is not None:
                try:
                    result = future.result()
                except Exception as err:  # raised on the worker after retries, or KilledWorker
                    outcome.status, outcome.error = "failed", describe_error(outcome.name, err)
                    outcome.exception = err
                else:
                    if isinstance(result, FrameFailure):
                        outcome.status, outcome.error = "failed", result.message
                        outcome.exception = result.exception
                    else:
                        outcome.output = result
                future.release()
            fill()  # keep the cluster busy while the caller handles this frame
            yield outcome
    finally:
        for _, future in slots:
            if future is not None:
                future.cancel()


@contextmanager
def open_client(
    workers: int | None = None,
    scheduler: str | None = None,
    tf_threads: int | None = None,
    quiet: bool = True,
):
    """A Client of an existing cluster (`scheduler` address), or of a LocalCluster of
    `workers` processes with one Dask thread each; closed (and the cluster shut down) on exit.

    tf_threads: TensorFlow's intra-op threads per local worker. None keeps TensorFlow's
    default (one per core), as the plain loop in this process has it: TensorFlow's CPU
    kernels sum in an order that depends on the thread count, so only equal counts give
    outputs identical to the plain loop's bit for bit. A smaller count (cores / workers)
    avoids oversubscribing the cores and may be faster; outputs then differ in the last bits
    of float32 (about 1e-6 relative).
    """
    import dask
    from distributed import Client, LocalCluster

    level = logging.ERROR if quiet else logging.WARNING
    if scheduler:
        client = Client(scheduler, timeout="30s")
        try:
            yield client
        finally:
            client.close()
        return
    if not workers or workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    if tf_threads:
        env["TF_NUM_INTRAOP_THREADS"] = str(int(tf_threads))
    # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in new workers, which turns off glibc's
    # dynamic mmap threshold: TensorFlow's large buffers are then mapped and unmapped on every
    # call (measured: a 512x384 frame 0.18 s -> 0.30-0.42 s). None leaves it unset.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=level,
            env=env,
        )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()
