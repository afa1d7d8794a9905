"""`hdrcnn train` end to end on tiny synthetic scenes, a tiny width factor and a few steps."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from napari_hdrcnn.cli import main
from napari_hdrcnn.io import read_image, write_exr, write_png
from napari_hdrcnn.weights import Weights, load_weights, read_authors_npz, write_weights
from test_camera import sunny_scene
from testdata import SHARED_DATA, random_tensors, write_authors_layout

WIDTH = "0.0625"
TINY = [
    "--width-factor",
    WIDTH,
    "--crop",
    "64",
    "--batch-size",
    "2",
    "--no-progress",
    "--val-samples",
    "2",
    "--log-every",
    "1",
    "--seed",
    "3",
]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    train, val = root / "train", root / "val"
    train.mkdir()
    val.mkdir()
    write_exr(train / "pano_a.exr", sunny_scene(64, 128, 0))
    write_exr(train / "pano_b.exr", sunny_scene(64, 128, 1, sun=(0.5, 0.2)))
    write_exr(train / "photo.exr", sunny_scene(96, 112, 2))
    write_exr(val / "val.exr", sunny_scene(64, 128, 3, sun=(0.4, 0.8)))
    return train, val


def train_args(scenes, out, *extra):
    train, val = scenes
    return ["train", "--data", str(train), "--val", str(val), "--out", str(out), *TINY, *extra]


@pytest.fixture(scope="module")
def run4(scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run4"
    assert (
        main(
            train_args(
                scenes,
                out,
                "--steps",
                "4",
                "--checkpoint-every",
                "2",
                "--val-every",
                "2",
                "--export-authors",
            )
        )
        == 0
    )
    return out


def tensorboard_tags(folder):
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    tags = set()
    for f in folder.iterdir():
        for record in tf.data.TFRecordDataset(str(f)):
            tags |= {v.tag for v in event_pb2.Event.FromString(record.numpy()).summary.value}
    return tags


def log_rows(out):
    with open(out / "train_log.csv") as f:
        return list(csv.DictReader(f))


def test_train_writes_weights_checkpoints_log_and_settings(run4, scenes):
    w = load_weights(run4 / "weights.npz")
    assert w.width_factor == 0.0625 and w.linearize == "gamma2.2"
    meta = w.metadata
    assert meta["step"] == 4 and meta["seed"] == 3 and meta["crop"] == 64
    assert meta["batch_size"] == 2 and meta["loss"] == "ir" and meta["data"] == str(scenes[0])
    assert "date" in meta and "git_commit" in meta
    rows = log_rows(run4)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert [bool(r["val_loss"]) for r in rows] == [False, True, False, True]
    assert all(np.isfinite(float(r["loss"])) and float(r["lr"]) == 5e-5 for r in rows)
    names = sorted(p.name for p in (run4 / "checkpoints").iterdir())
    assert names == [
        "step_000002.adam.npz",
        "step_000002.npz",
        "step_000004.adam.npz",
        "step_000004.npz",
    ]
    settings = json.loads((run4 / "run.json").read_text())
    assert settings["width_factor"] == 0.0625 and settings["camera"]["crop"] == 64
    assert settings["val_loss_baseline"] > 0  # the clipped highlights are not in the input
    authors = read_authors_npz(run4 / "weights_authors.npz")
    for a, b in zip(authors.tensors, w.tensors):
        np.testing.assert_array_equal(a, b)
    tags = tensorboard_tags(run4 / "tensorboard")
    assert {"loss", "val_loss", "learning_rate", "val_input_target_prediction"} <= tags
    # training moved the weights away from the initialisation, batch-norm statistics included
    start = load_weights(run4 / "checkpoints" / "step_000002.npz")
    assert any(not np.array_equal(a, b) for a, b in zip(start.tensors, w.tensors))
    assert np.abs(w.tensors[28]).max() > 0  # h6 moving mean


def test_loss_mask_and_faint_highlights_reach_the_run_settings(scenes, tmp_path):
    out = tmp_path / "blend"
    assert (
        main(
            train_args(
                scenes,
                out,
                "--steps",
                "1",
                "--loss-mask",
                "blend",
                "--faint-highlights",
                "0.5",
                "--faint-headroom",
                "1.1",
                "1.2",
                "--over-boost-weight",
                "3",
                "--over-boost-stops",
                "0.5",
            )
        )
        == 0
    )
    settings = json.loads((out / "run.json").read_text())
    assert settings["loss_mask"] == "blend"
    assert settings["camera"]["faint_probability"] == 0.5
    assert settings["camera"]["faint_headroom"] == [1.1, 1.2]
    assert (settings["over_boost_weight"], settings["over_boost_stops"]) == (3.0, 0.5)
    metadata = load_weights(out / "weights.npz").metadata
    assert metadata["loss_mask"] == "blend"
    assert (metadata["over_boost_weight"], metadata["over_boost_stops"]) == (3.0, 0.5)


def test_resume_continues_the_step_count_and_matches_an_unbroken_run(run4, scenes, tmp_path):
    resumed = tmp_path / "resumed"
    shutil.copytree(run4, resumed)
    shutil.rmtree(resumed / "checkpoints")
    shutil.copytree(run4 / "checkpoints", resumed / "checkpoints")
    (resumed / "checkpoints" / "step_000004.npz").unlink()  # resume from step 2
    (resumed / "checkpoints" / "step_000004.adam.npz").unlink()
    assert main(["train", "--resume", str(resumed), "--steps", "4", "--no-progress"]) == 0
    w = load_weights(resumed / "weights.npz")
    assert w.metadata["step"] == 4
    with np.load(resumed / "checkpoints" / "step_000004.adam.npz") as z:
        assert float(z["t"]) == 4.0
    assert [int(r["step"]) for r in log_rows(resumed)] == [1, 2, 3, 4, 3, 4]
    # same data, same optimizer state: the resumed run lands where the unbroken one did
    straight = load_weights(run4 / "weights.npz")
    for a, b in zip(w.tensors, straight.tensors):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_train_then_predict_end_to_end(run4, tmp_path):
    photo = np.zeros((64, 96, 3), np.uint8)
    photo[:] = np.linspace(40, 200, 96, dtype=np.uint8)[None, :, None]
    photo[20:40, 30:60] = 255
    write_png(tmp_path / "photo.png", photo)
    out = tmp_path / "pred"
    assert (
        main(
            [
                "predict",
                "--params",
                str(run4 / "weights.npz"),
                "--im_dir",
                str(tmp_path / "photo.png"),
                "--out_dir",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    hdr = read_image(out / "000001_out.exr")
    assert hdr.shape == (64, 96, 3) and np.isfinite(hdr).all()
    # outside the clipped area the output is the gamma-2.2 linearised input
    np.testing.assert_allclose(hdr[50, 5], (photo[50, 5] / 255) ** 2.2, rtol=2e-3)


def test_init_from_the_authors_layout_and_a_time_limit(scenes, tmp_path, capsys):
    init = write_authors_layout(random_tensors(0.0625, seed=4), tmp_path / "authors.npz")
    out = tmp_path / "fine"
    args = [
        a
        for a in train_args(
            scenes, out, "--steps", "1000", "--max-minutes", "0.0001", "--init", str(init)
        )
        if a not in ("--width-factor", WIDTH)
    ]
    assert main(args) == 0  # the width comes from the --init file
    assert "time limit" in capsys.readouterr().err  # stopped cleanly after one step
    w = load_weights(out / "weights.npz")
    assert w.width_factor == 0.0625 and w.metadata["step"] == 1
    assert w.blend == "max"  # the authors' files record no blend: theirs
    assert [int(r["step"]) for r in log_rows(out)] == [1]
    start = random_tensors(0.0625, seed=4)
    assert np.abs(w.tensors[0] - start[0]).max() < 1e-3  # one small step away from init
    # a wider --width-factor widens the file's network (training.widen) and trains that
    thin = tmp_path / "thin.npz"  # ours, with the blend the run's weights inherit
    write_weights(Weights(random_tensors(0.03125, seed=4), 0.03125, blend="consistent"), thin)
    wider = tmp_path / "wider"
    assert main(train_args(scenes, wider, "--steps", "1", "--init", str(thin))) == 0
    w = load_weights(wider / "weights.npz")
    assert w.width_factor == float(WIDTH) and w.metadata["init"] == str(thin)
    assert w.blend == "consistent"
    # a narrower one is refused
    narrow = write_authors_layout(random_tensors(0.125, seed=4), tmp_path / "wide.npz")
    bad = train_args(scenes, tmp_path / "bad", "--steps", "1", "--init", str(narrow))
    capsys.readouterr()
    assert main(bad) == 1
    assert "widened, not narrowed" in capsys.readouterr().err


def test_preview_writes_sample_pairs(scenes, tmp_path):
    out = tmp_path / "prev"
    assert (
        main(
            ["train", "--data", str(scenes[0]), "--out", str(out), "--crop", "64", "--preview", "2"]
        )
        == 0
    )
    png = read_image(out / "preview" / "sample_000.png")
    assert png.shape == (64, 128, 3)  # input | target
    assert read_image(out / "preview" / "sample_001_target.exr").max() >= 1.0


def test_ldr_pretraining_preview_relinearises_photos(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    write_png(photos / "a.png", (rng.random((80, 96, 3)) * 200).astype(np.uint8))
    out = tmp_path / "prev"
    assert (
        main(
            [
                "train",
                "--data",
                str(photos),
                "--data-mode",
                "ldr",
                "--out",
                str(out),
                "--crop",
                "32",
                "--preview",
                "1",
                "--clip-fraction",
                "0.1",
                "0.1",
                "--noise-max",
                "0",
            ]
        )
        == 0
    )
    x = read_image(out / "preview" / "sample_000.png")[:, :32]
    assert np.mean(x.max(-1) == 255) == pytest.approx(0.1, abs=0.02)


def test_cli_refuses_bad_settings(scenes, tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "o")]) == 2
    assert "--data is required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # argparse checks the value as it parses it
        main(train_args(scenes, tmp_path / "o", "--crop", "50"))
    assert refused.value.code == 2
    assert "--crop: must be a multiple of 32" in capsys.readouterr().err
    assert (
        main(["train", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "o"), *TINY])
        == 1
    )
    assert "nothing" in capsys.readouterr().err


def test_baseline_loss_is_zero_when_the_input_holds_the_whole_target():
    from napari_hdrcnn.training.loop import baseline_loss

    x = np.linspace(0.5, 1.0, 64 * 64 * 3, dtype=np.float32).reshape(1, 64, 64, 3)
    exact = {"x": x, "y": x**2.2}
    assert baseline_loss([exact], "ir", "gamma2.2") == pytest.approx(0.0, abs=1e-9)
    clipped = {"x": x, "y": np.where(x >= 1.0, 4.0, x**2.2).astype(np.float32)}
    assert baseline_loss([clipped], "l2", "gamma2.2") > 1e-4


def test_loss_falls_when_fitting_one_fixed_batch(scenes):
    from napari_hdrcnn.model import HDRCNN, training_init
    from napari_hdrcnn.training.camera import CameraSettings
    from napari_hdrcnn.training.data import SampleSource, load_scenes
    from napari_hdrcnn.training.trainer import Trainer

    loaded = load_scenes(scenes[0], crop=32)
    batch = SampleSource(loaded, CameraSettings(crop=32), seed=1).batch(0, 4)
    model = HDRCNN(0.0625)
    training_init(model, 0)
    trainer = Trainer(model, crop=32, lr=1e-3)
    losses = [trainer.run_step(batch) for _ in range(31)]  # each is the loss before its update
    assert losses[0] > 0.01
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.slow  # one more trace; the regularisation terms themselves are in test_losses
def test_regularized_step_runs_and_is_deterministic(scenes):
    from napari_hdrcnn.model import HDRCNN, training_init
    from napari_hdrcnn.training.camera import CameraSettings
    from napari_hdrcnn.training.config import TrainConfig
    from napari_hdrcnn.training.data import SampleSource, load_scenes
    from napari_hdrcnn.training.trainer import Trainer, regularization_inputs, step_inputs

    config = TrainConfig(
        data=str(scenes[0]), out="unused", crop=64, batch_size=2, regularization="coherence"
    )
    extra = regularization_inputs(config, 5, 2)
    np.testing.assert_array_equal(
        extra["transforms"], regularization_inputs(config, 5, 2)["transforms"]
    )
    batch = SampleSource(load_scenes(scenes[0], crop=64), CameraSettings(crop=64)).batch(0, 2)
    model = HDRCNN(0.0625)
    training_init(model, 0)
    trainer = Trainer(model, crop=64, regularization="coherence")
    inputs = step_inputs({**batch, **extra})
    _, rec, reg = (float(v) for v in trainer._losses(*inputs))
    # the over-boost weights belong to the reconstruction loss alone, never to the flicker term
    weighted = Trainer(model, crop=64, regularization="coherence", over_boost_weight=3.0)
    _, rec_weighted, reg_weighted = (float(v) for v in weighted._losses(*inputs))
    assert reg_weighted == pytest.approx(reg, rel=1e-6) and rec_weighted >= rec
    loss = trainer.run_step({**batch, **extra})
    assert np.isfinite(loss) and loss > 0


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "hdr" / "train").is_dir(), reason="no shared HDR data")
def test_readme_example_on_the_shared_scenes(tmp_path):
    """A new user's first run, shortened: real panoramas and photos, then a real photo."""
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                str(SHARED_DATA / "hdr" / "train"),
                "--val",
                str(SHARED_DATA / "hdr" / "val"),
                "--out",
                str(out),
                "--width-factor",
                "0.125",
                "--crop",
                "64",
                "--batch-size",
                "4",
                "--steps",
                "20",
                "--val-every",
                "10",
                "--val-samples",
                "8",
                "--no-progress",
            ]
        )
        == 0
    )
    rows = log_rows(out)
    assert int(rows[-1]["step"]) == 20 and rows[-1]["val_loss"]
    photo = sorted((SHARED_DATA / "ldr" / "saturated").iterdir())[0]
    assert (
        main(
            [
                "predict",
                "--params",
                str(out / "weights.npz"),
                "--im_dir",
                str(photo),
                "--out_dir",
                str(tmp_path / "pred"),
                "--width",
                "256",
                "--height",
                "192",
                "--no-progress",
            ]
        )
        == 0
    )
    hdr = read_image(tmp_path / "pred" / "000001_out.exr")
    assert hdr.shape == (192, 256, 3) and np.isfinite(hdr).all()
