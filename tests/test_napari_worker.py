"""The widget's TensorFlow worker process on its own (no viewer): protocol, warm reuse, cancel."""

from __future__ import annotations

import os

import numpy as np
import pytest

from napari_hdrcnn._worker import Job, ReconstructionProcess, WorkerStopped
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

    assert messages[-1][0] == "done"
    results = [m for m in messages if m[0] == "frame"]
    assert [m[2] for m in results] == [0, 1]
    for _, _, _, hdr, mask in results:
        assert hdr.shape == (80, 100, 3) and hdr.dtype == np.float32
        assert mask.shape == (80, 100) and 0 <= mask.min() <= mask.max() <= 1
    n_tiles = expected_tiles(80, 100)
    for frame in (0, 1):
        done = [m[4] for m in messages if m[0] == "progress" and m[2] == frame]
        assert done == list(range(n_tiles + 1))  # 0, 1, ..., n: one message per tile
        assert {m[5] for m in messages if m[0] == "progress" and m[2] == frame} == {n_tiles}
    np.testing.assert_array_equal(frames, sent)


def test_the_process_stays_warm_and_reports_errors_as_messages(
    process, small_weights_file, tmp_path
):
    pid = process.pid
    image = np.zeros((1, 40, 40), np.uint8)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a weight file")
    [error] = list(process.run(Job(image, str(broken))))
    assert error[0] == "error" and "broken.npz" in error[2]
    messages = list(process.run(Job(image, str(small_weights_file))))
    assert messages[-1][0] == "done"
    assert process.pid == pid and process.is_alive()  # same warm process throughout


def test_cancel_ends_the_process_in_the_middle(small_weights_file):
    proc = ReconstructionProcess("cpu")
    big = (np.random.default_rng(1).random((1, 640, 640, 3)) * 255).astype(np.uint8)
    stream = proc.run(Job(big, str(small_weights_file), ReconstructOptions(tile=TILE)))
    for message in stream:
        if message[0] == "progress" and message[4] >= 1:
            break
    pid = proc.pid
    proc.cancel()
    with pytest.raises(WorkerStopped, match="cancelled"):
        for message in stream:
            assert message[0] != "done"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not proc.is_alive()
