"""The engine side of the napari widget: a spawned process that owns a `Reconstructor`.

TensorFlow and napari's software OpenGL crash when loaded in one process, so the widget never
imports an engine: it sends jobs to this process over a pipe and reads progress and results
back. The process is started with the `spawn` method for one device and engine, imports the
engine once (OpenVINO on the CPU path: TensorFlow is not imported there at all) and keeps the
last model loaded, so later runs pay neither the import nor the model build. Cancel terminates
it; the next run starts a fresh one.

Protocol (pickled tuples over one duplex `multiprocessing.Pipe`; only our own processes talk):
    parent -> child:  a `Job`, or None to stop
    child -> parent:  ("ready", None)
                      ("progress", job_id, frame, n_frames, tiles_done, tiles_total)
                      ("frame", job_id, frame, hdr, mask)
                      ("done", job_id)
                      ("error", job_id, message)

This module must stay importable without napari and without TensorFlow: the child imports it.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .options import ReconstructOptions

POLL_SECONDS = 0.05
STOP_TIMEOUT_SECONDS = 5.0


class WorkerStopped(Exception):
    """The process ended while a job was running (cancelled, or it crashed).

    Not a RuntimeError: superqt's thread workers swallow those as "aborted thread" instead of
    emitting `errored`."""


@dataclass
class Job:
    """Frames to reconstruct and the options of the reconstruction (the process's own device
    and engine replace the options')."""

    frames: np.ndarray  # (T, H, W[, C]): one image per frame
    weights: str  # a weight name or a file path
    options: ReconstructOptions = field(default_factory=ReconstructOptions)
    job_id: int = 0


# -- the child -------------------------------------------------------------------------------------
def _weights_key(weights: str) -> tuple:
    """A file's identity includes its mtime and size, so a rewritten file is loaded again."""
    try:
        st = os.stat(weights)
        return (os.path.abspath(weights), st.st_mtime_ns, st.st_size)
    except OSError:
        return (weights,)


def _serve(conn, device: str, engine: str = "auto") -> None:
    """The child's main loop: import the engine once, then run jobs until told to stop."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import importlib

    from .engines import choose_engine
    from .reconstruct import Reconstructor, configure_device

    configure_device(device)  # before TensorFlow initialises
    build = ReconstructOptions(device=device, engine=engine)
    chosen = choose_engine(build)
    try:
        importlib.import_module(chosen)  # warm up now rather than at the first run
    except Exception as err:  # reported with the first job rather than lost
        import_error = f"{chosen} could not be imported: {err}"
    else:
        import_error = None
    conn.send(("ready", None))

    loaded: tuple[tuple, Reconstructor] | None = None  # keep one model: memory stays bounded
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent went away
            return
        if job is None:
            return
        try:
            if import_error:
                raise RuntimeError(import_error)
            key = _weights_key(job.weights)
            if loaded is None or loaded[0] != key:
                loaded = None  # free the old model before loading the next
                loaded = (key, Reconstructor(job.weights, build))
            reconstructor = loaded[1]
            options = job.options.replace(**build.build_fields())
            n_frames = len(job.frames)
            for i, frame in enumerate(job.frames):

                def progress(done, total, i=i, job_id=job.job_id, n_frames=n_frames):
                    conn.send(("progress", job_id, i, n_frames, done, total))

                result = reconstructor.run(frame, options, progress=progress)
                conn.send(("frame", job.job_id, i, result.hdr, result.mask))
            conn.send(("done", job.job_id))
        except (BrokenPipeError, EOFError):
            return
        except Exception as err:
            try:
                conn.send(("error", job.job_id, f"{type(err).__name__}: {err}"))
            except (BrokenPipeError, OSError):
                return


# -- the parent ------------------------------------------------------------------------------------
class ReconstructionProcess:
    """A warm worker process for one device and engine; `run` streams a job's messages.

    Thread-safe: one job at a time; `cancel` may be called from any thread while `run` waits.
    """

    def __init__(self, device: str = "auto", engine: str = "auto"):
        self.device = device
        self.engine = engine
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn = None
        self._run_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._job_ids = itertools.count(1)
        self._cancelled_jobs: set[int] = set()
        self._current_job: int | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> None:
        """Spawn the process if it is not running (the engine loads in the background)."""
        with self._state_lock:
            if self.is_alive():
                return
            self._close_locked()
            ctx = multiprocessing.get_context("spawn")
            parent_end, child_end = ctx.Pipe(duplex=True)
            process = ctx.Process(
                target=_serve,
                args=(child_end, self.device, self.engine),
                name=f"napari-hdrcnn-worker-{self.device}-{self.engine}",
                daemon=True,
            )
            process.start()
            child_end.close()  # only the child holds it now: its death shows up as EOF here
            self._process, self._conn = process, parent_end

    def run(self, job: Job) -> Iterator[tuple]:
        """Send `job`; yield its progress, frame, done or error messages, ending at done/error.

        Raises WorkerStopped when the process ends first (after `cancel`, or a crash).
        """
        with self._run_lock:
            self.start()
            job.job_id = next(self._job_ids)
            self._current_job = job.job_id
            conn, process = self._conn, self._process
            try:
                try:
                    conn.send(job)
                except (OSError, EOFError) as err:
                    raise self._stopped(job.job_id, process) from err
                while True:
                    try:
                        ready = conn.poll(POLL_SECONDS)
                        msg = conn.recv() if ready else None
                    except (OSError, EOFError) as err:
                        raise self._stopped(job.job_id, process) from err
                    if msg is None:
                        if not process.is_alive():
                            raise self._stopped(job.job_id, process)
                        continue
                    if msg[0] == "ready" or msg[1] != job.job_id:
                        continue
                    yield msg
                    if msg[0] in ("done", "error"):
                        return
            finally:
                self._current_job = None

    def _stopped(self, job_id: int, process) -> WorkerStopped:
        if job_id in self._cancelled_jobs:
            return WorkerStopped("cancelled")
        code = process.exitcode if process is not None else None
        return WorkerStopped(f"the reconstruction process stopped unexpectedly (exit code {code})")

    def cancel(self) -> None:
        """Stop the running job now by ending the process; the next run starts a fresh one."""
        if self._current_job is not None:
            self._cancelled_jobs.add(self._current_job)
        self.terminate()

    def terminate(self) -> None:
        with self._state_lock:
            process = self._process
            if process is not None and process.is_alive():
                process.terminate()
                process.join(STOP_TIMEOUT_SECONDS)
                if process.is_alive():
                    process.kill()
                    process.join(STOP_TIMEOUT_SECONDS)
            self._close_locked()

    def stop(self) -> None:
        """Ask the process to exit, then make sure it did."""
        with self._state_lock:
            if self._conn is not None and self.is_alive():
                try:
                    self._conn.send(None)
                except OSError:
                    pass
                self._process.join(STOP_TIMEOUT_SECONDS)
        self.terminate()

    def _close_locked(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._process = None


_SHARED: dict[tuple[str, str], ReconstructionProcess] = {}
_SHARED_LOCK = threading.Lock()


def shared_process(device: str = "auto", engine: str = "auto") -> ReconstructionProcess:
    """The warm process for `device` and `engine`, shared by every widget (one per pair:
    TensorFlow picks its devices when imported, so a process cannot switch)."""
    key = (device, engine)
    with _SHARED_LOCK:
        if key not in _SHARED:
            for other in list(_SHARED):  # one engine process at a time keeps memory low
                _SHARED.pop(other).stop()
            _SHARED[key] = ReconstructionProcess(device, engine)
        return _SHARED[key]


def prewarm(device: str = "auto", engine: str = "auto") -> None:
    """Start a worker for `device` and `engine` unless one is already running."""
    with _SHARED_LOCK:
        if any(p.is_alive() for p in _SHARED.values()):
            return
    shared_process(device, engine).start()


def stop_shared_processes() -> None:
    with _SHARED_LOCK:
        for key in list(_SHARED):
            _SHARED.pop(key).stop()
