"""Where TensorFlow runs: one TensorFlow distribution with or without the [gpu] extra, and
`--device gpu` on a machine without a GPU refused up front (exit 2) while `auto` uses the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

from napari_hdrcnn import io
from napari_hdrcnn.cli import main
from napari_hdrcnn.reconstruct import DeviceError, require_device

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "napari_hdrcnn" / "data" / "sample_clipped_sunset.png"


def tensorflow_distributions(requirements: list[str], system: str) -> set[str]:
    env = {"platform_system": system, "sys_platform": system.lower(), "extra": ""}
    found = set()
    for line in requirements:
        req = Requirement(line)
        if req.name.startswith("tensorflow") and (req.marker is None or req.marker.evaluate(env)):
            found.add(req.name)
    return found


@pytest.mark.parametrize("system", ["Linux", "Darwin", "Windows"])
def test_one_tensorflow_distribution_with_or_without_the_gpu_extra(system):
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = project["dependencies"]
    gpu = project["optional-dependencies"]["gpu"]
    assert tensorflow_distributions(base, system) == {"tensorflow"}
    assert tensorflow_distributions(base + gpu, system) == {"tensorflow"}
    extras = {Requirement(r).name: Requirement(r).extras for r in gpu}
    if system == "Linux":  # the CUDA libraries come with the extra, on Linux
        assert extras["tensorflow"] == {"and-cuda"}


@pytest.fixture
def no_gpu(monkeypatch):
    """This machine as one without a GPU, whatever it has."""
    import tensorflow as tf

    real = tf.config.list_physical_devices
    monkeypatch.setattr(
        tf.config,
        "list_physical_devices",
        lambda kind=None: [] if kind == "GPU" else real(kind),
    )


def test_require_device_names_the_problem(no_gpu):
    for device in ("auto", "cpu"):
        require_device(device)  # no error: auto falls back to the CPU
    with pytest.raises(DeviceError, match="TensorFlow sees no GPU.*'auto'.*'cpu'"):
        require_device("gpu")


def test_predict_on_gpu_without_one_exits_2_before_any_frame(no_gpu, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["predict", "--im_dir", str(SAMPLE), "--out_dir", str(out), "--no-progress"]
    assert main(args + ["--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "hdrcnn predict: --device gpu: TensorFlow sees no GPU" in err
    assert "FAILED" not in err and not out.exists()
    assert main(args + ["--device", "auto"]) == 0  # the same on auto: the CPU does it
    assert (out / "000001_out.exr").is_file()


def test_evaluate_and_train_on_gpu_without_one_exit_2(no_gpu, tmp_path, capsys):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    rng = np.random.default_rng(0)
    io.write_exr(scenes / "scene.exr", rng.random((64, 64, 3), np.float32) * 4)
    evaluate = ["evaluate", "--reference", str(scenes), "--out", str(tmp_path / "eval")]
    assert main(evaluate + ["--device", "gpu"]) == 2
    assert "hdrcnn evaluate: --device gpu: TensorFlow sees no GPU" in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()
    train = ["train", "--data", str(scenes), "--out", str(tmp_path / "run"), "--steps", "1"]
    assert main(train + ["--device", "gpu"]) == 2
    assert "hdrcnn train: --device gpu: TensorFlow sees no GPU" in capsys.readouterr().err
    assert not (tmp_path / "run" / "weights.npz").exists()
