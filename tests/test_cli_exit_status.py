"""The exit status of every subcommand follows one rule (napari_hdrcnn.cli.common, README "Exit
status"): 2 when the command line cannot be used, found before any work and naming the option;
1 when the work fails; 0 when it succeeds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from napari_hdrcnn.cli import common, main


def run(argv: list[str]) -> int:
    """main's status, or argparse's (which exits instead of returning)."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code)


def test_the_rule_is_written_once():
    assert (common.OK, common.FAILURE, common.USAGE, common.INTERRUPTED) == (0, 1, 2, 130)


@pytest.mark.parametrize(
    "options, flag",
    [
        (["--log-every", "0"], "--log-every"),
        (["--lr", "0"], "--lr"),
        (["--crop", "33"], "--crop"),
        (["--batch-size", "0"], "--batch-size"),
        (["--seed", "-1"], "--seed"),
        (["--beta1", "1"], "--beta1"),
        (["--hue-std", "-1"], "--hue-std"),
        (["--fov", "90", "50"], "--fov"),
        (["--clip-fraction", "0.2", "0.1"], "--clip-fraction"),
        (["--gamma", "2.2", "-0.1"], "--gamma"),
        (["--jpeg-quality", "0", "100"], "--jpeg-quality"),
    ],
)
def test_train_refuses_bad_options_before_any_work(tmp_path, capsys, options, flag):
    data = tmp_path / "no-such-data"  # would fail with status 1 if anything were read
    out = tmp_path / "run"
    assert run(["train", "--data", str(data), "--out", str(out), *options]) == 2
    assert flag in capsys.readouterr().err
    assert not out.exists()


def test_train_needs_data_and_out_before_any_work(tmp_path, capsys):
    missing_init = tmp_path / "missing.npz"  # would be read (status 1) if the check came later
    assert run(["train", "--out", str(tmp_path / "run"), "--init", str(missing_init)]) == 2
    assert "--data" in capsys.readouterr().err


@pytest.mark.parametrize(
    "options, flag",
    [
        (["--clip", "100"], "--clip"),
        (["--clip", "0"], "--clip"),
        (["--jpeg", "0"], "--jpeg"),
        (["--max-side", "16"], "--max-side"),
        (["--label", "a", "b"], "--label"),
        (["--label", "ldr_linear"], "--label"),
        (["--ldr", "given", "--jpeg", "90"], "--jpeg"),
        (["--ldr", "given", "--max-side", "64"], "--max-side"),
    ],
)
def test_evaluate_refuses_bad_options_before_any_work(tmp_path, capsys, options, flag):
    reference = tmp_path / "no-such-reference"  # would fail with status 1 if it were read
    out = tmp_path / "o"
    argv = ["evaluate", "--reference", str(reference), "--out", str(out), *options]
    assert run(argv) == 2
    assert flag in capsys.readouterr().err
    assert not out.exists()


def test_runtime_failures_exit_1_in_every_subcommand(tmp_path, capsys):
    missing = str(tmp_path / "missing.npz")
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(photo)
    out = str(tmp_path / "o")
    cases = {
        "predict": ["predict", "--params", missing, "--im_dir", str(photo), "--out_dir", out],
        "predict-empty": ["predict", "--im_dir", str(tmp_path / "empty"), "--out_dir", out],
        "evaluate": ["evaluate", "--reference", str(tmp_path / "none.exr"), "--out", out],
        "train": ["train", "--data", str(tmp_path), "--out", out, "--init", missing],
        "weights": ["weights", "info", missing],
    }
    (tmp_path / "empty").mkdir()
    for name, argv in cases.items():
        assert run(argv) == 1, name
        err = capsys.readouterr().err
        assert err.startswith(f"hdrcnn {argv[0]}: "), (name, err)


def test_bad_options_exit_2_in_every_subcommand(tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(photo)
    cases = {
        "predict": (["predict", "--im_dir", str(photo), "--gamma", "-1"], "--gamma"),
        "predict-workers": (["predict", "--im_dir", str(photo), "--workers", "0"], "--workers"),
        "evaluate": (
            ["evaluate", "--reference", str(photo), "--out", "o", "--blend", "x"],
            "--blend",
        ),
        "train": (["train", "--data", str(tmp_path), "--out", "o", "--steps", "-1"], "--steps"),
        "weights": (["weights", "install", "hdrcnn"], "file"),
    }
    for name, (argv, named) in cases.items():
        assert run(argv) == 2, name
        assert named in capsys.readouterr().err, name
