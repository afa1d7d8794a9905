"""scripts/score_checkpoints.py and napari_hdrcnn.evaluate.checkpoints: each checkpoint of a
run scored by the protocol's clipped-region gain, as `hdrcnn evaluate` measures it."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np

from napari_hdrcnn.io import write_exr
from napari_hdrcnn.weights import Weights, write_weights
from testdata import random_tensors

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "score_checkpoints.py"


def run(*args):
    return subprocess.run(
        [sys.executable, *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_checkpoints_scored_once_as_evaluate_scores_them(tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    for k, step in enumerate((250, 500)):
        weights = Weights(random_tensors(0.0625, seed=k), 0.0625, "gamma2.2", blend="consistent")
        write_weights(weights, folder / f"step_{step:06d}.npz", step=step)
    val = tmp_path / "val"
    val.mkdir()
    rng = np.random.default_rng(3)
    scene = np.exp(rng.normal(-1, 1, (64, 96, 3))).astype(np.float32)
    scene[20:30, 40:60] = 30.0
    write_exr(val / "scene.exr", scene)

    first = run(SCRIPT, tmp_path / "run", "--reference", val)
    assert first.returncode == 0, first.stderr[-2000:]
    out = tmp_path / "run" / "protocol_val.csv"
    rows = list(csv.DictReader(open(out)))
    assert [(r["step"], r["weights"], r["clip"]) for r in rows] == [
        ("250", "step_000250.npz", "95"),
        ("250", "step_000250.npz", "97"),
        ("500", "step_000500.npz", "95"),
        ("500", "step_000500.npz", "97"),
    ]
    assert all(r["mean_gain"] == r["worst_gain"] for r in rows)  # one scene
    again = run(SCRIPT, tmp_path / "run", "--reference", val)  # nothing new: nothing added
    assert again.returncode == 0 and len(list(csv.DictReader(open(out)))) == 4

    evaluated = run(
        "-m", "napari_hdrcnn.cli", "evaluate", "--reference", val,
        "--params", folder / "step_000500.npz", "--label", "s500", "--clip", 95, 97,
        "--blend", "consistent", "--linearize", "gamma2.2", "--no-figures",
        "--out", tmp_path / "eval",
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    table = list(csv.DictReader(open(tmp_path / "eval" / "per_image.csv")))
    psnr = {(r["method"], r["clip"]): float(r["pu21_psnr_clipped"]) for r in table}
    for r in rows[2:]:
        gain = psnr["s500", r["clip"]] - psnr["ldr_linear", r["clip"]]
        assert abs(gain - float(r["mean_gain"])) < 0.02, (r, gain)


def test_a_folder_without_checkpoints_is_refused(tmp_path):
    done = run(SCRIPT, tmp_path, "--reference", tmp_path)
    assert done.returncode != 0 and "no checkpoints/ folder" in done.stderr


def test_follow_scores_checkpoints_as_they_appear(tmp_path):
    """--follow waits for the run's final weights.npz written after it started (a resumed
    run's older one does not stop it), scoring each checkpoint once."""
    import time

    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    weights = Weights(random_tensors(0.0625, seed=1), 0.0625, "gamma2.2", blend="consistent")
    write_weights(weights, tmp_path / "run" / "weights.npz")  # from before a resume
    val = tmp_path / "val"
    val.mkdir()
    scene = np.exp(np.random.default_rng(4).normal(-1, 1, (64, 64, 3))).astype(np.float32)
    scene[10:20, 10:30] = 30.0
    write_exr(val / "scene.exr", scene)
    follow = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(tmp_path / "run"), "--reference", str(val),
         "--clip", "95", "--follow", "--poll", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(4)  # it started and keeps waiting: the old weights.npz does not stop it
        assert follow.poll() is None
        write_weights(weights, folder / "step_000100.npz", step=100)
        write_weights(weights, folder / "step_000200.npz", step=200)
        write_weights(weights, tmp_path / "run" / "weights.npz", step=200)
        out, err = follow.communicate(timeout=120)
    finally:
        follow.kill()
    assert follow.returncode == 0, err[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "run" / "protocol_val.csv")))
    assert [(r["step"], r["clip"]) for r in rows] == [("100", "95"), ("200", "95")]
