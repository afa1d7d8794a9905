"""`hdrcnn train --strategy`: TF_CONFIG parsing and strategy choice (no TensorFlow), then real
runs in subprocesses (TensorFlow's devices and cluster are fixed when it starts):
MirroredStrategy on two logical CPU devices, and two MultiWorkerMirroredStrategy workers on
localhost."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from napari_hdrcnn.cli import main
from napari_hdrcnn.io import write_exr
from napari_hdrcnn.training.camera import CameraSettings
from napari_hdrcnn.training.data import SampleSource, scene_from_array
from napari_hdrcnn.training.distribute import (
    Cluster,
    DistributeError,
    WorkerSampleSource,
    choose_strategy,
    parse_tf_config,
    per_replica_batch,
)
from napari_hdrcnn.weights import load_weights
from test_camera import sunny_scene

TINY = [
    "--width-factor",
    "0.0625",
    "--crop",
    "64",
    "--batch-size",
    "4",
    "--seed",
    "3",
    "--no-progress",
    "--log-every",
    "1",
    "--device",
    "cpu",
]
SUBPROCESS_TIMEOUT = 240  # a hang (a worker waiting for a peer forever) fails the test


def tf_config(workers, task_type="worker", index=0, chief=None):
    cluster = {"worker": workers, **({"chief": chief} if chief else {})}
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


# -- TF_CONFIG, strategy choice, batch split (no TensorFlow) -------------------------------------
def test_tf_config_workers_and_chief():
    assert parse_tf_config(None) is None and parse_tf_config("  ") is None
    two = ["localhost:2001", "localhost:2002"]
    first, second = (parse_tf_config(tf_config(two, index=i)) for i in (0, 1))
    assert first.num_workers == 2 and first.is_chief and first.rank == 0
    assert not second.is_chief and second.rank == 1
    # with a "chief" job, it is rank 0 and the workers follow (TensorFlow's id_in_cluster)
    with_chief = parse_tf_config(tf_config(two, "worker", 0, chief=["10.0.0.1:2000"]))
    assert with_chief.num_workers == 3 and with_chief.rank == 1 and not with_chief.is_chief
    assert parse_tf_config(tf_config(two, "chief", 0, chief=["10.0.0.1:2000"])).is_chief


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"cluster": {"worker": ["a:1"]}, "task": ', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', "no 'cluster'"),
        ('{"cluster": {"worker": ["a:1"]}}', "no 'task'"),
        ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
        ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "non-empty list"),
        (
            '{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker"}}',
            "'ps' is not supported",
        ),
        ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker"}}', "twice"),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
            "'chief' is not a job",
        ),
        (
            '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
            "index 2 is out of range for the 2 worker",
        ),
    ],
)
def test_malformed_tf_config_is_refused_with_the_reason(text, message):
    with pytest.raises(DistributeError, match=message):
        parse_tf_config(text)


def test_strategy_choice():
    two = Cluster((), ("a:1", "b:1"), "worker", 0)
    one = Cluster((), ("a:1",), "worker", 0)
    assert choose_strategy("auto", two, 0) == "multi-worker"
    assert choose_strategy("auto", one, 2) == "mirrored"
    assert choose_strategy("auto", None, 2) == "mirrored"
    assert choose_strategy("auto", None, 1) == "none"
    assert choose_strategy("none", two, 8) == "none"
    assert choose_strategy("mirrored", None, 0) == "mirrored"
    assert choose_strategy("multi-worker", one, 0) == "multi-worker"
    with pytest.raises(DistributeError, match="needs the TF_CONFIG"):
        choose_strategy("multi-worker", None, 4)
    with pytest.raises(DistributeError, match="unknown strategy"):
        choose_strategy("ring", None, 0)


def test_the_global_batch_splits_evenly_or_is_refused():
    assert per_replica_batch(8, 2) == 4 and per_replica_batch(4, 4) == 1
    with pytest.raises(
        DistributeError, match="--batch-size 6 cannot be split evenly across 4 replicas"
    ):
        per_replica_batch(6, 4)


def test_workers_draw_different_samples_and_rank_0_the_single_device_ones():
    scene = scene_from_array(sunny_scene(64, 96, 0), "s", crop=32)
    plain = SampleSource([scene], CameraSettings(crop=32), seed=5)
    rank0, rank1 = WorkerSampleSource(plain, 0), WorkerSampleSource(plain, 1)
    np.testing.assert_array_equal(rank0.batch(3, 2)["x"], plain.batch(3, 2)["x"])
    assert not np.array_equal(rank1.batch(3, 2)["x"], plain.batch(3, 2)["x"])
    np.testing.assert_array_equal(rank1.batch(3, 2)["x"], rank1.batch(3, 2)["x"])


def test_cli_refuses_multi_worker_without_a_usable_tf_config(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_exr(data / "scene.exr", sunny_scene(64, 96, 0))
    args = [
        "train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "out"),
        *TINY,
        "--steps",
        "1",
        "--strategy",
        "multi-worker",
    ]
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert main(args) == 2  # refused before any work, as --device gpu without a GPU
    assert "needs the TF_CONFIG" in capsys.readouterr().err
    monkeypatch.setenv("TF_CONFIG", '{"cluster": ')
    assert main(args) == 2
    assert "TF_CONFIG is not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "out" / "weights.npz").exists()


# -- real runs, each in fresh processes ------------------------------------------------------------
@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    write_exr(folder / "pano.exr", sunny_scene(64, 128, 0))
    write_exr(folder / "photo.exr", sunny_scene(96, 112, 2))
    return folder


def python(code: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    full_env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    full_env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1", **(env or {}))
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(processes: list[subprocess.Popen], status: int = 0) -> list[str]:
    """Wait for all, which must exit with `status`; on a timeout kill them all (a worker may
    wait for a dead peer)."""
    outputs = []
    try:
        for p in processes:
            outputs.append(p.communicate(timeout=SUBPROCESS_TIMEOUT)[0])
    except subprocess.TimeoutExpired:
        for p in processes:
            p.kill()
        pytest.fail(f"training processes did not finish in {SUBPROCESS_TIMEOUT} s")
    for p, out in zip(processes, outputs):
        assert p.returncode == status, out[-3000:]
    return outputs


def log_rows(out) -> list[dict]:
    with open(out / "train_log.csv") as f:
        return list(csv.DictReader(f))


def log_losses(out) -> list[float]:
    return [float(r["loss"]) for r in log_rows(out)]


MIRRORED_SCRIPT = textwrap.dedent("""
    import sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]  # two replicas on one CPU
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from napari_hdrcnn.cli import main

    data, root, *tiny = sys.argv[1:]
    base = ["train", "--data", data, "--val", data, "--val-samples", "4", "--val-every", "3",
            "--steps", "3", "--checkpoint-every", "1", *tiny]
    assert main(base + ["--out", root + "/single", "--strategy", "none", "--no-tensorboard"]) == 0
    assert main(base + ["--out", root + "/mirrored", "--strategy", "mirrored"]) == 0
    assert main(base + ["--out", root + "/uneven", "--strategy", "mirrored",
                        "--batch-size", "3"]) == 1
""")


@pytest.mark.parametrize(
    "extra", [[], pytest.param(["--regularization", "coherence"], marks=pytest.mark.slow)]
)
def test_mirrored_on_two_devices_trains_like_one_device(scenes, tmp_path, extra):
    out = finish([python(MIRRORED_SCRIPT, str(scenes), str(tmp_path), *TINY, *extra)])[0]
    assert "--batch-size 3 cannot be split evenly across 2 replicas" in out
    single, mirrored = tmp_path / "single", tmp_path / "mirrored"
    settings = json.loads((mirrored / "run.json").read_text())
    assert settings["replicas"] == 2 and settings["per_replica_batch"] == 2
    assert settings["batch_size"] == 4  # --batch-size stays the global batch
    losses = log_losses(mirrored)
    assert len(losses) == 3 and np.isfinite(losses).all()
    first = load_weights(mirrored / "checkpoints" / "step_000001.npz").tensors
    final = load_weights(mirrored / "weights.npz").tensors
    assert any(not np.array_equal(a, b) for a, b in zip(first, final))  # it trains
    # Same samples, each replica half of them, batch norm synchronised, gradients summed:
    # the same step as one device up to the order of float sums.
    np.testing.assert_allclose(losses, log_losses(single), rtol=1e-3)
    val_losses = [
        [float(r["val_loss"]) for r in log_rows(run) if r["val_loss"]] for run in (single, mirrored)
    ]
    np.testing.assert_allclose(*val_losses, rtol=1e-3)  # validation on mirrored variables
    assert (mirrored / "tensorboard").is_dir()
    for a, b in zip(final, load_weights(single / "weights.npz").tensors):
        np.testing.assert_allclose(a, b, atol=1e-3)


WORKER_SCRIPT = "import sys; from napari_hdrcnn.cli import main; sys.exit(main(sys.argv[1:]))"


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_two_workers(scenes, tmp_path, *extra: str) -> tuple[list[str], list]:
    """Worker 0 (the chief) writes tmp_path/chief; worker 1 is given tmp_path/other as --out,
    and writes its final weights to tmp_path/other_weights."""
    workers = [f"localhost:{p}" for p in free_ports(2)]
    outs = [tmp_path / "chief", tmp_path / "other"]
    processes = [
        python(
            WORKER_SCRIPT,
            "train",
            "--data",
            str(scenes),
            "--out",
            str(outs[i]),
            *TINY,
            "--strategy",
            "multi-worker",
            "--worker-out",
            str(tmp_path / "other_weights"),
            *extra,
            env={"TF_CONFIG": tf_config(workers, index=i)},
        )
        for i in range(2)
    ]
    return finish(processes), outs


def test_two_workers_on_localhost_end_with_the_same_weights(scenes, tmp_path):
    logs, (chief, other) = run_two_workers(
        scenes, tmp_path, "--steps", "3", "--checkpoint-every", "2"
    )
    assert "2 replicas, 2 samples each of the global batch of 4" in logs[0]
    chief_weights = load_weights(chief / "weights.npz")
    other_weights = load_weights(tmp_path / "other_weights" / "weights.npz")
    assert chief_weights.metadata["step"] == other_weights.metadata["step"] == 3
    for a, b in zip(chief_weights.tensors, other_weights.tensors):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    # only the chief writes the run folder
    assert sorted(p.name for p in (chief / "checkpoints").iterdir()) == [
        "step_000002.adam.npz",
        "step_000002.npz",
        "step_000003.adam.npz",
        "step_000003.npz",
    ]
    assert len(log_losses(chief)) == 3 and np.isfinite(log_losses(chief)).all()
    assert not other.exists()
    assert (chief / "tensorboard").is_dir()
    settings = json.loads((chief / "run.json").read_text())
    assert settings["workers"] == 2 and settings["per_replica_batch"] == 2


@pytest.mark.slow  # two more two-worker runs; the fast test above covers the plain run
def test_two_workers_resume_from_the_chief_checkpoint_only(scenes, tmp_path):
    """The chief resumes from its run folder; the other worker has no checkpoint (no shared
    disk) and takes the chief's weights, optimizer state and step. A stop on one worker (its
    time limit) stops both after the same step."""
    import shutil

    straight = tmp_path / "straight"
    straight.mkdir()
    run_two_workers(scenes, straight, "--steps", "4", "--checkpoint-every", "2")
    resumed = tmp_path / "resumed"
    shutil.copytree(straight / "chief", resumed / "chief")
    for name in ("step_000004.npz", "step_000004.adam.npz"):
        (resumed / "chief" / "checkpoints" / name).unlink()
    workers = [f"localhost:{p}" for p in free_ports(2)]
    processes = [
        python(
            WORKER_SCRIPT,
            "train",
            "--resume",
            str(resumed / name),
            "--data",
            str(scenes),
            *TINY,
            "--steps",
            "4",
            "--strategy",
            "multi-worker",
            "--worker-out",
            str(resumed / "other_weights"),
            env={"TF_CONFIG": tf_config(workers, index=i)},
        )
        for i, name in enumerate(("chief", "other"))
    ]
    logs = finish(processes)
    assert "starts from the chief's" in logs[1]
    final = load_weights(resumed / "chief" / "weights.npz")
    assert final.metadata["step"] == 4
    for a, b, c in zip(
        final.tensors,
        load_weights(resumed / "other_weights" / "weights.npz").tensors,
        load_weights(straight / "chief" / "weights.npz").tensors,
    ):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        np.testing.assert_allclose(a, c, rtol=1e-3, atol=1e-5)  # as if never interrupted
    assert not (resumed / "other").exists()

    # the chief's time limit stops the other worker too, after the same step
    workers = [f"localhost:{p}" for p in free_ports(2)]
    limits = (["--max-minutes", "0.0001"], [])
    processes = [
        python(
            WORKER_SCRIPT,
            "train",
            "--data",
            str(scenes),
            "--out",
            str(tmp_path / f"limited{i}"),
            *TINY,
            "--steps",
            "50",
            "--strategy",
            "multi-worker",
            "--worker-out",
            str(tmp_path / "limited_other"),
            *limits[i],
            env={"TF_CONFIG": tf_config(workers, index=i)},
        )
        for i in range(2)
    ]
    logs = finish(processes)
    assert "stopped by another worker" in logs[1]
    steps = [
        load_weights(tmp_path / f).metadata["step"]
        for f in ("limited0/weights.npz", "limited_other/weights.npz")
    ]
    assert steps[0] == steps[1] < 50


@pytest.mark.slow
def test_workers_with_different_settings_all_stop_with_the_reason(scenes, tmp_path):
    workers = [f"localhost:{p}" for p in free_ports(2)]
    crops = ("64", "32")
    processes = [
        python(
            WORKER_SCRIPT,
            "train",
            "--data",
            str(scenes),
            "--out",
            str(tmp_path / f"out{i}"),
            *TINY,
            "--crop",
            crops[i],
            "--steps",
            "2",
            "--strategy",
            "multi-worker",
            env={"TF_CONFIG": tf_config(workers, index=i)},
        )
        for i in range(2)
    ]
    logs = finish(processes, status=1)
    assert "must train with the chief's settings" in logs[0]
    assert "the chief has crop 64 (this worker: 32)" in logs[1]
    assert not (tmp_path / "out0" / "weights.npz").exists()
