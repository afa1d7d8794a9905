"""The widget's TensorFlow worker process on its own (no viewer): protocol, warm reuse, cancel."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from napari_hdrcnn._worker import (
    Done,
    Failed,
    FrameResult,
    Job,
    Progress,
    ReconstructionProcess,
    Stopped,
)
from napari_hdrcnn.options import ReconstructOptions
from napari_hdrcnn.reconstruct import MULTIPLE, tile_starts

TILE = 64


@pytest.fixture(scope="module")
def process():
    proc = ReconstructionProcess("cpu")
    yield proc
    proc.stop()


def expected_tiles(height: int, width: int, tile: int = TILE, overlap: int = 32) -> int:
    padded = [n + (-n % MULTIPLE) for n in (height, width)]
    return len(tile_starts(padded[0], tile, overlap)) * len(tile_starts(padded[1], tile, overlap))


def test_progress_per_tile_and_one_result_per_frame(process, small_weights_file):
    frames = (np.random.default_rng(0).random((2, 80, 100, 3)) * 255).astype(np.uint8)
    sent = frames.copy()
    messages = list(
        process.run(Job(frames, str(small_weights_file), ReconstructOptions(tile=TILE)))
    )

    assert isinstance(messages[-1], Done)
    results = [m for m in messages if isinstance(m, FrameResult)]
    assert [m.frame for m in results] == [0, 1]
    for result in results:
        assert result.hdr.shape == (80, 100, 3) and result.hdr.dtype == np.float32
        assert result.mask.shape == (80, 100) and 0 <= result.mask.min() <= result.mask.max() <= 1
    n_tiles = expected_tiles(80, 100)
    progress = [m for m in messages if isinstance(m, Progress)]
    for frame in (0, 1):
        done = [m.tiles_done for m in progress if m.frame == frame]
        assert done == list(range(n_tiles + 1))  # 0, 1, ..., n: one message per tile
        assert {(m.tiles_total, m.n_frames) for m in progress if m.frame == frame} == {(n_tiles, 2)}
    np.testing.assert_array_equal(frames, sent)


def test_the_process_stays_warm_and_reports_errors_as_messages(
    process, small_weights_file, tmp_path
):
    pid = process.pid
    image = np.zeros((1, 40, 40), np.uint8)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a weight file")
    [error] = list(process.run(Job(image, str(broken))))
    assert isinstance(error, Failed) and "broken.npz" in error.message
    messages = list(process.run(Job(image, str(small_weights_file))))
    assert isinstance(messages[-1], Done)
    assert process.pid == pid and process.is_alive()  # same warm process throughout


def test_the_worker_is_its_own_program_not_a_child_of_the_main_module(process):
    """It runs `python -m napari_hdrcnn._worker`: nothing of the parent's script is re-run."""
    with open(f"/proc/{process.pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert argv[1:4] == [b"-m", b"napari_hdrcnn._worker", b"--device"]


def test_a_plain_script_without_main_guard_can_use_the_worker(tmp_path, small_weights_file):
    """multiprocessing's spawn re-imported the caller's script in the child; this does not."""
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import numpy as np
            from napari_hdrcnn._worker import Done, ReconstructionProcess, Job

            print("script body ran")
            proc = ReconstructionProcess("cpu")
            frames = np.zeros((1, 40, 40, 3), np.uint8)
            for run in range(2):
                messages = list(proc.run(Job(frames, {str(small_weights_file)!r})))
                print(type(messages[-1]).__name__, proc.pid)
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "script body ran" and lines.count("script body ran") == 1
    (done1, pid1), (done2, pid2) = (line.split() for line in lines[1:])
    assert done1 == done2 == Done.__name__ and pid1 == pid2  # the second run found it warm
    assert "bootstrapping" not in out.stderr


def test_cancel_ends_the_process_in_the_middle(small_weights_file):
    proc = ReconstructionProcess("cpu")
    big = (np.random.default_rng(1).random((1, 640, 640, 3)) * 255).astype(np.uint8)
    stream = proc.run(Job(big, str(small_weights_file), ReconstructOptions(tile=TILE)))
    for message in stream:
        if isinstance(message, Progress) and message.tiles_done >= 1:
            break
    pid = proc.pid
    proc.cancel()
    rest = list(stream)
    assert not any(isinstance(m, Done) for m in rest)
    assert isinstance(rest[-1], Stopped) and rest[-1].reason == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # ended and reaped
    assert not proc.is_alive()
    # the next run starts a fresh process and works
    messages = list(proc.run(Job(big[:, :64, :64], str(small_weights_file))))
    assert isinstance(messages[-1], Done) and proc.pid != pid
    proc.stop()
