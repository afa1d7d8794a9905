"""scripts/average_checkpoints.py: the mean of a run's checkpoints (all, or from a step on)."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from napari_hdrcnn.weights import Weights, load_weights, write_weights
from testdata import random_tensors

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "average_checkpoints.py"


def test_mean_of_the_checkpoints_from_a_step(tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    tensors = {}
    for k, step in enumerate((250, 500, 750)):
        tensors[step] = random_tensors(0.0625, seed=k)
        weights = Weights(tensors[step], 0.0625, "gamma2.2", blend="consistent")
        write_weights(weights, folder / f"step_{step:06d}.npz", step=step)
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, str(SCRIPT), str(tmp_path / "run"), *map(str, a)],
        capture_output=True,
        text=True,
    )
    done = run(tmp_path / "late.npz", "--from-step", 500)
    assert done.returncode == 0, done.stderr
    late = load_weights(tmp_path / "late.npz")
    assert late.metadata["averaged_steps"] == [500, 750] and late.metadata["step"] == 750
    expected = (tensors[500][3].astype(np.float64) + tensors[750][3]) / 2
    np.testing.assert_allclose(late.tensors[3], expected, rtol=1e-6)
    assert run(tmp_path / "all.npz").returncode == 0
    assert load_weights(tmp_path / "all.npz").metadata["averaged_steps"] == [250, 500, 750]
    none = run(tmp_path / "none.npz", "--from-step", 1000)
    assert none.returncode != 0 and "from step 1000" in none.stderr
