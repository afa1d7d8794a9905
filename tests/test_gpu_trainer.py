"""scripts/gpu/train_jax.py (the JAX trainer for GPU machines without TensorFlow) computes what
the package's TensorFlow model and losses compute: network output, loss and its gradient."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")  # the test extra installs it; see pyproject.toml
tf = pytest.importorskip("tensorflow")

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trainer():
    return _load("train_jax", ROOT / "scripts" / "gpu" / "train_jax.py")


@pytest.fixture(scope="module")
def packer():
    return _load("pack_scenes", ROOT / "scripts" / "gpu" / "pack_scenes.py")


def _random_weights(width: float, seed: int) -> list[np.ndarray]:
    from napari_hdrcnn.architecture import tensor_specs

    rng = np.random.default_rng(seed)
    out = []
    for s in tensor_specs(width):
        if s.name.endswith("moving_variance"):
            out.append(rng.uniform(0.5, 2.0, s.shape).astype(np.float32))
        elif s.name.endswith("gamma"):
            out.append(rng.uniform(0.5, 1.5, s.shape).astype(np.float32))
        else:
            fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 10
            out.append(rng.normal(0, 1.0 / np.sqrt(fan_in), s.shape).astype(np.float32))
    return out


def _batch(seed: int, n: int = 2, size: int = 64):
    rng = np.random.default_rng(seed)
    y = np.exp(rng.normal(-0.5, 1.2, (n, size, size, 3))).astype(np.float32)
    x = np.round(np.clip(y, 0, 1) ** (1 / 2.2) * 255) / 255
    return x.astype(np.float32), y


@pytest.mark.parametrize("width", [0.125, 0.25])
def test_network_matches_tensorflow(trainer, width):
    from napari_hdrcnn.model import HDRCNN

    weights = _random_weights(width, 1)
    x, _ = _batch(2)
    model = HDRCNN(width)
    model.set_weights(weights)
    _, _, log_prediction = trainer.build_fns(width)
    for training in (False, True):
        want = model.log_prediction(tf.constant(x), training=training).numpy()
        got, _ = log_prediction([jax.numpy.asarray(w) for w in weights], x, training)
        np.testing.assert_allclose(np.asarray(got), want, atol=2e-4, rtol=1e-4)


def test_loss_and_gradient_match_tensorflow(trainer):
    from napari_hdrcnn.model import HDRCNN
    from napari_hdrcnn.training.losses import loss_mask, reconstruction_loss, weighted_loss_mask

    width = 0.125
    weights = _random_weights(width, 3)
    x, y = _batch(4)
    model = HDRCNN(width)
    model.set_weights(weights)
    with tf.GradientTape() as tape:
        y_log = model.log_prediction(tf.constant(x), training=True)
        mask = weighted_loss_mask(loss_mask("blend", y, x), y_log, y, 3.0, 1.0)
        want = reconstruction_loss("ir", y_log, y, mask)
    want_grads = tape.gradient(want, model.trainable)

    _, _, log_prediction = trainer.build_fns(width)
    loss_fn = trainer.make_loss(log_prediction, 3.0, 1.0)
    params = [jax.numpy.asarray(w) for w in weights]
    (got, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
    assert float(got) == pytest.approx(float(want), rel=1e-4)
    trainable = [
        g for s, g in zip(model.specs, grads) if not s.name.endswith(("_mean", "_variance"))
    ]
    assert len(trainable) == len(want_grads)
    # one scale for all: the biases before a batch norm have a true gradient of 0 (both sides
    # give round-off of ~1e-12), so a per-tensor scale would compare noise with noise
    scale = max(float(np.abs(w.numpy()).max()) for w in want_grads)
    for g, w in zip(trainable, want_grads):
        np.testing.assert_allclose(np.asarray(g) / scale, w.numpy() / scale, atol=1e-4)


def test_rgbe_pack_round_trip(packer, trainer):
    rng = np.random.default_rng(0)
    image = np.exp(rng.normal(0, 3, (16, 20, 3))).astype(np.float32)
    image[0, 0] = 0.0
    back = trainer.from_rgbe(packer.to_rgbe(image))
    # RGBE shares one exponent per pixel: each channel is exact to 1/128 of the pixel's peak
    peak = image.max(axis=-1, keepdims=True)
    assert np.all(np.abs(back - image) <= peak / 128)
    assert back[0, 0].tolist() == [0.0, 0.0, 0.0]


def test_a_short_run_packs_trains_and_imports(tmp_path):
    """The whole path on the CPU: scenes packed, a few steps of two models side by side (one
    from scratch, one from a weight file), the result imported as a weight file that loads."""
    import csv
    import subprocess

    from napari_hdrcnn.io import write_exr
    from napari_hdrcnn.training.widen import widened_tensors
    from napari_hdrcnn.weights import load_weights

    rng = np.random.default_rng(0)
    data = tmp_path / "scenes"
    data.mkdir()
    for k in range(2):  # panoramas (2:1) with a bright patch to clip
        scene = np.exp(rng.normal(-1, 1, (64, 128, 3))).astype(np.float32)
        scene[20:26, 40 + 20 * k : 48 + 20 * k] = 50.0
        write_exr(data / f"scene{k}.exr", scene)
    init = tmp_path / "init.npz"  # a narrower network: the trainer widens it to 0.125
    np.savez(init, **{f"t{i:02d}": a for i, a in enumerate(_random_weights(0.0625, 5))})
    gpu = ROOT / "scripts" / "gpu"
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, *map(str, args)], capture_output=True, text=True, timeout=400
    )
    packed = run(gpu / "pack_scenes.py", data, tmp_path / "pack", "--parts", "1")
    assert packed.returncode == 0, packed.stderr
    val = tmp_path / "val"
    val.mkdir()
    scene = np.exp(rng.normal(-1, 1, (64, 96, 3))).astype(np.float32)  # not a multiple of 32
    scene[30:40, 20:34] = 20.0
    write_exr(val / "held_out.exr", scene)
    trained = run(
        gpu / "train_jax.py",
        "--scenes", tmp_path / "pack" / "part0",
        "--model", "a:0.125",
        "--model", f"b:0.125:{init}:1:5e-5",
        "--out", tmp_path / "run",
        "--steps", 4, "--batch-size", 2, "--crop", 32, "--workers", 1,
        "--log-every", 2, "--checkpoint-every", 2, "--average-from", 0.5,
        "--val", val, "--val-every", 2,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "training on 2 scenes" in trained.stdout
    assert "widened from width 0.0625 to 0.125" in trained.stdout
    done = (tmp_path / "run" / "b" / "done.json").read_text()
    assert '"steps": 4' in done and '"averaged_steps": [2, 4]' in done
    # the protocol's score at checkpoints (steps 2 and 4): the current weights and the average
    # of the checkpoints so far (the averaging window starts at step 2)
    val_rows = [r.split(",") for r in (tmp_path / "run" / "b" / "val.csv").read_text().split()]
    assert val_rows[0] == ["step", "weights", "clip", "mean_gain", "worst_gain", "harmed"]
    assert [tuple(r[:3]) for r in val_rows[1:]] == [
        (step, weights, clip)
        for step in ("2", "4")
        for weights in ("current", "average")
        for clip in ("95", "97")
    ]
    final_gain = {r[2]: float(r[3]) for r in val_rows if r[:2] == ["4", "current"]}
    for tensors in ("final.npz", "averaged.npz"):
        out = tmp_path / f"b_{tensors}"
        imported = run(gpu / "import_weights.py", tmp_path / "run" / "b" / tensors, out)
        assert imported.returncode == 0, imported.stderr
        weights = load_weights(out)
        assert weights.width_factor == 0.125 and weights.blend == "consistent"
        assert weights.metadata["trained_by"] == "scripts/gpu/train_jax.py"
        assert weights.metadata["over_boost_weight"] == 1.0 and weights.metadata["step"] == 4
        # it trained: the weights moved away from the file it started from
        if tensors == "final.npz":  # hdrcnn evaluate gives the same gain as the trainer's
            scored = run(
                "-m", "napari_hdrcnn.cli", "evaluate", "--reference", val, "--params", out,
                "--label", "b", "--clip", 95, 97, "--no-figures", "--out", tmp_path / "eval",
            )  # fmt: skip
            assert scored.returncode == 0, scored.stderr[-2000:]
            rows = list(csv.DictReader(open(tmp_path / "eval" / "per_image.csv")))
            psnr = {(r["method"], r["clip"]): float(r["pu21_psnr_clipped"]) for r in rows}
            for clip in ("95", "97"):
                gain = psnr["b", clip] - psnr["ldr_linear", clip]
                assert abs(gain - final_gain[clip]) < 0.02, (clip, gain, final_gain)
        narrow = [np.load(init)[f"t{i:02d}"] for i in range(80)]
        start = widened_tensors(narrow, 0.0625, 0.125, seed=0)[0]
        assert start.shape == weights.tensors[0].shape
        assert not np.array_equal(weights.tensors[0], start)


def test_batches_through_shared_memory_equal_the_pipes(trainer, tmp_path, monkeypatch):
    """The ring of shared-memory slots hands over the same batches, in step order, as the
    pool's result pipe; slots are reused (more steps than slots) without overwriting a batch
    before it was taken."""
    import multiprocessing as mp

    from napari_hdrcnn.io import write_exr
    from napari_hdrcnn.training.camera import CameraSettings

    monkeypatch.syspath_prepend(str(ROOT / "scripts" / "gpu"))  # the workers import train_jax
    rng = np.random.default_rng(1)
    scene = np.exp(rng.normal(-1, 1, (64, 128, 3))).astype(np.float32)
    scene[20:26, 40:48] = 50.0
    write_exr(tmp_path / "scene.exr", scene)
    settings = CameraSettings(crop=32).to_dict()
    steps, batch, window = 7, 2, 3
    got = {}
    for transport in ("pipe", "shm"):
        ring = trainer.BatchRing(window, batch, 32) if transport == "shm" else None
        init = ([str(tmp_path)], 32, settings, 0, None if ring is None else (ring.spec, ring.names))
        with mp.get_context("spawn").Pool(2, trainer._init_worker, init) as pool:
            got[transport] = list(trainer.batches(pool, steps, batch, ring, window))
        if ring is not None:
            ring.close()
    assert [s for s, _, _ in got["shm"]] == list(range(steps))
    for (_, x_pipe, y_pipe), (_, x_shm, y_shm) in zip(got["pipe"], got["shm"]):
        assert x_shm.dtype == np.uint8 and y_shm.dtype == np.float32
        assert np.array_equal(x_pipe, x_shm) and np.array_equal(y_pipe, y_shm)
    assert not np.array_equal(got["shm"][0][2], got["shm"][window][2])  # distinct batches
