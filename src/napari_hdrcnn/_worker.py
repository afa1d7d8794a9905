"""The engine side of the napari widget: a `python -m napari_hdrcnn._worker` process that
owns a `Reconstructor`.

TensorFlow and napari's software OpenGL crash when loaded in one process, so the widget never
imports TensorFlow: it sends jobs to this process and reads progress and results back. The
process is a program of its own, not a multiprocessing child: multiprocessing's `spawn`
re-imports the parent's main module, so a user's plain script (no `if __name__ ==
"__main__":`) would run again in the child, open a second viewer and crash the worker. The
process is started for one device and engine, imports the engine once (OpenVINO on the CPU
path: TensorFlow is not imported there at all) and keeps the last model loaded, so later runs
pay neither the import nor the model build. Cancel terminates it; the next run starts a fresh one.

Protocol: the message dataclasses below, pickled and framed by
`multiprocessing.connection.Connection`, jobs over the child's stdin, messages back over its
original stdout (the child points its fd 1 at stderr, so that a library printing to stdout
cannot corrupt the stream). Only our own two processes talk.

    parent -> child:  Job, or Stop
    child -> parent:  Ready, then per job: Progress..., FrameResult per frame, Done or Failed
    parent only:      Stopped, when the process ended during a job (cancel or crash)

This module must stay importable without napari and without TensorFlow: the child imports it.
"""

from __future__ import annotations

import argparse
import atexit
import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from .options import ReconstructOptions

POLL_SECONDS = 0.05
STOP_TIMEOUT_SECONDS = 5.0
MODULE = "napari_hdrcnn._worker"


# -- messages --------------------------------------------------------------------------------------
@dataclass
class Job:
    """Frames to reconstruct and the options of the reconstruction (the process's own device
    and engine replace the options')."""

    frames: np.ndarray  # (T, H, W[, C]): one image per frame
    weights: str  # a weight name or a file path
    options: ReconstructOptions = field(default_factory=ReconstructOptions)
    job_id: int = 0


@dataclass(frozen=True)
class Stop:
    """Parent -> child: exit."""


@dataclass(frozen=True)
class Ready:
    """Child -> parent, once: TensorFlow is imported (or failed to, reported with each job)."""


@dataclass(frozen=True)
class Progress:
    job_id: int
    frame: int  # 0-based
    n_frames: int
    tiles_done: int
    tiles_total: int


@dataclass(frozen=True)
class FrameResult:
    job_id: int
    frame: int  # 0-based
    hdr: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Done:
    job_id: int


@dataclass(frozen=True)
class Failed:
    """The job raised in the child; the process stays warm."""

    job_id: int
    message: str


@dataclass(frozen=True)
class Stopped:
    """The process ended while the job ran: cancelled, or it crashed."""

    job_id: int
    reason: str


FINAL_MESSAGES = (Done, Failed, Stopped)  # the last message of every job


class _Channel:
    """Framed pickles over two one-way pipes (a receiving and a sending file descriptor)."""

    def __init__(self, read_fd: int, write_fd: int):
        self._in = Connection(read_fd, writable=False)
        self._out = Connection(write_fd, readable=False)

    def send(self, message) -> None:
        self._out.send(message)

    def recv(self):
        return self._in.recv()

    def poll(self, timeout: float) -> bool:
        return self._in.poll(timeout)

    def close(self) -> None:
        for conn in (self._in, self._out):
            try:
                conn.close()
            except OSError:
                pass


# -- the child -------------------------------------------------------------------------------------
def _weights_key(weights: str) -> tuple:
    """A file's identity includes its mtime and size, so a rewritten file is loaded again."""
    try:
        st = os.stat(weights)
        return (os.path.abspath(weights), st.st_mtime_ns, st.st_size)
    except OSError:
        return (weights,)


def _serve(channel: _Channel, device: str, engine: str = "auto") -> None:
    """The child's main loop: import the engine once, then run jobs until told to stop."""
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
    channel.send(Ready())

    loaded: tuple[tuple, Reconstructor] | None = None  # keep one model: memory stays bounded
    while True:
        try:
            job = channel.recv()
        except (EOFError, OSError):  # the parent went away
            return
        if not isinstance(job, Job):
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
                    channel.send(Progress(job_id, i, n_frames, done, total))

                result = reconstructor.run(frame, options, progress=progress)
                channel.send(FrameResult(job.job_id, i, result.hdr, result.mask))
            channel.send(Done(job.job_id))
        except (BrokenPipeError, EOFError):
            return
        except Exception as err:
            try:
                channel.send(Failed(job.job_id, f"{type(err).__name__}: {err}"))
            except OSError:
                return


def main(argv: list[str] | None = None) -> int:
    """The child's entry point: `python -m napari_hdrcnn._worker --device auto --engine auto`."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--engine", default="auto")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Keep the protocol's pipes to ourselves: fd 0 and 1 become /dev/null and stderr, so
    # nothing else reads a job or writes into the message stream.
    read_fd, write_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    _serve(_Channel(read_fd, write_fd), args.device, args.engine)
    return 0


# -- the parent ------------------------------------------------------------------------------------
def worker_command(device: str, engine: str = "auto") -> list[str]:
    return [sys.executable, "-m", MODULE, "--device", device, "--engine", engine]


def _worker_environment() -> dict[str, str]:
    """The child imports this very copy of the package, whatever put it on our sys.path."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


class ReconstructionProcess:
    """A warm worker process for one device and engine; `run` streams a job's messages.

    Thread-safe: one job at a time; `cancel` may be called from any thread while `run` waits.
    """

    def __init__(self, device: str = "auto", engine: str = "auto"):
        self.device = device
        self.engine = engine
        self._process: subprocess.Popen | None = None
        self._channel: _Channel | None = None
        self._run_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._job_ids = itertools.count(1)
        self._cancelled_jobs: set[int] = set()
        self._current_job: int | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the process if it is not running (the engine loads in the background)."""
        with self._state_lock:
            if self.is_alive():
                return
            self._close_locked()
            process = subprocess.Popen(
                worker_command(self.device, self.engine),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=_worker_environment(),
            )
            # our own copies of the pipe ends; the child holds the others, so its end shows
            # up here as EOF
            channel = _Channel(os.dup(process.stdout.fileno()), os.dup(process.stdin.fileno()))
            process.stdout.close()
            process.stdin.close()
            self._process, self._channel = process, channel

    def run(self, job: Job) -> Iterator:
        """Send `job`; yield its messages, ending with a Done, Failed or Stopped message
        (Stopped: the process ended first, after `cancel` or a crash)."""
        with self._run_lock:
            self.start()
            job.job_id = next(self._job_ids)
            self._current_job = job.job_id
            channel, process = self._channel, self._process
            try:
                try:
                    channel.send(job)
                except (OSError, EOFError):
                    yield self._stopped(job.job_id, process)
                    return
                while True:
                    try:
                        msg = channel.recv() if channel.poll(POLL_SECONDS) else None
                    except (OSError, EOFError):
                        yield self._stopped(job.job_id, process)
                        return
                    if msg is None:
                        if process.poll() is not None:
                            yield self._stopped(job.job_id, process)
                            return
                        continue
                    if getattr(msg, "job_id", None) != job.job_id:
                        continue  # Ready, or a message of an earlier job
                    yield msg
                    if isinstance(msg, FINAL_MESSAGES):
                        return
            finally:
                self._current_job = None

    def _stopped(self, job_id: int, process: subprocess.Popen) -> Stopped:
        if job_id in self._cancelled_jobs:
            return Stopped(job_id, "cancelled")
        try:
            code = process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            code = None
        return Stopped(
            job_id, f"the reconstruction process stopped unexpectedly (exit code {code})"
        )

    def cancel(self) -> None:
        """Stop the running job now by ending the process; the next run starts a fresh one."""
        if self._current_job is not None:
            self._cancelled_jobs.add(self._current_job)
        self.terminate()

    def terminate(self) -> None:
        """End the process and reap it. The pipes stay open until the next start, so that a
        `run` waiting on them sees the end of the stream rather than a closed handle."""
        with self._state_lock:
            process = self._process
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(STOP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        """Ask the process to exit, then make sure it did."""
        with self._state_lock:
            if self._channel is not None and self.is_alive():
                try:
                    self._channel.send(Stop())
                    self._process.wait(STOP_TIMEOUT_SECONDS)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        self.terminate()
        with self._state_lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None
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


atexit.register(stop_shared_processes)  # a worker never outlives the viewer's process

if __name__ == "__main__":
    # Serve from the importable module, not from this `__main__` copy: the pickled messages
    # must name napari_hdrcnn._worker's classes, which the parent can resolve.
    from napari_hdrcnn._worker import main as _main

    sys.exit(_main())
