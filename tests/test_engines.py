"""The OpenVINO engine against TensorFlow (the reference engine), how `auto` chooses, the fallback,
and the CPU path without TensorFlow. The numpy reference anchors both engines in test_model.py."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from napari_hdrcnn import engines
from napari_hdrcnn.cli import main
from napari_hdrcnn.io import read_image
from napari_hdrcnn.options import OptionError, ReconstructOptions
from napari_hdrcnn.reconstruct import Reconstructor
from napari_hdrcnn.weights import Weights, load_weights
from testdata import random_tensors

Y_LOG_TOLERANCE = 1e-4


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    """x in [0, 1] with a clipped corner, as the network sees it."""
    x = np.random.default_rng(seed).uniform(0, 1, (h, w, 3)).astype(np.float32)
    x[: h // 3, : w // 3] = 1.0
    return x


def _pair(weights) -> tuple[Reconstructor, Reconstructor]:
    return (
        Reconstructor(weights, device="cpu", engine="tensorflow"),
        Reconstructor(weights, device="cpu", engine="openvino"),
    )


@pytest.mark.parametrize("layout", ["ours", "authors"])
def test_openvino_matches_tensorflow_for_both_weight_layouts(
    layout, small_weights_file, authors_weights_file
):
    weights = load_weights(small_weights_file if layout == "ours" else authors_weights_file)
    tf, ov = _pair(weights)
    assert (tf.engine, ov.engine) == ("tensorflow", "openvino")
    x = _photo(64, 96, 1)
    want, got = tf.predict_log(x), ov.predict_log(x)
    assert np.abs(want).max() > 0.5  # not two near-zero maps
    assert np.abs(got - want).max() < Y_LOG_TOLERANCE


@pytest.fixture(scope="module")
def pairs():
    return {wf: _pair(Weights(random_tensors(wf, seed=7), wf, "gamma2.2")) for wf in (0.25, 0.5)}


@pytest.mark.parametrize("width_factor", [0.25, 0.5])
@pytest.mark.parametrize(
    "shape,tile",
    [((64, 96), None), ((70, 101), None), ((150, 200), 64), ((97, 160), 96)],
    ids=["multiple-of-32", "not-multiple", "tiled-not-multiple", "tiled"],
)
def test_openvino_matches_tensorflow_padded_and_tiled(pairs, width_factor, shape, tile):
    tf, ov = pairs[width_factor]
    options = ReconstructOptions(device="cpu", tile=tile, overlap=16)
    x = _photo(*shape, seed=2)
    want = tf.log_prediction(x, options.replace(engine="tensorflow"))
    got = ov.log_prediction(x, options.replace(engine="openvino"))
    assert got.shape == want.shape == (*shape, 3)
    assert np.abs(got - want).max() < Y_LOG_TOLERANCE


def _predict(weights_file, photo, out, *extra) -> np.ndarray:
    code = main(
        [
            "predict",
            "--params",
            str(weights_file),
            "--im_dir",
            str(photo),
            "--out_dir",
            str(out),
            "--exr-dtype",
            "float32",
            "--no-progress",
            "--device",
            "cpu",
            *extra,
        ]
    )
    assert code == 0
    return read_image(out / "000001_out.exr")


def test_hdrcnn_predict_gives_the_same_hdr_on_both_engines(tmp_path, small_weights_file, capsys):
    rng = np.random.default_rng(3)
    img = (rng.uniform(0, 1, (70, 101, 3)) ** 0.4 * 255).astype(np.uint8)
    img[10:30, 20:50] = 255
    photo = tmp_path / "p.png"
    Image.fromarray(img).save(photo)
    extra = ("--gamma", "1.2", "--blend", "per-channel", "--tile", "64", "--overlap", "16")
    tf = _predict(small_weights_file, photo, tmp_path / "tf", "--engine", "tensorflow", *extra)
    assert "engine: tensorflow" in capsys.readouterr().err
    ov = _predict(small_weights_file, photo, tmp_path / "ov", "--engine", "openvino", *extra)
    assert "engine: openvino" in capsys.readouterr().err
    assert tf.shape == ov.shape == (70, 101, 3)
    assert np.abs(np.log(ov + 1 / 255) - np.log(tf + 1 / 255)).max() < Y_LOG_TOLERANCE


def test_the_cpu_path_never_imports_tensorflow(tmp_path, small_weights_file):
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((40, 50, 3), 200, np.uint8)).save(photo)
    code = (
        "import sys\n"
        "from napari_hdrcnn.cli import main\n"
        f"rc = main(['predict', '--params', {str(small_weights_file)!r}, '--im_dir', "
        f"{str(photo)!r}, '--out_dir', {str(tmp_path / 'out')!r}, '--no-progress'])\n"
        "print(rc, 'tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split()[-2:] == ["0", "False"], out.stderr
    assert "engine: openvino" in out.stderr
    assert (tmp_path / "out" / "000001_out.exr").is_file()


def test_auto_is_openvino_on_the_cpu_and_tensorflow_for_a_gpu(monkeypatch):
    assert engines.choose_engine(ReconstructOptions(device="cpu")) == "openvino"
    assert engines.choose_engine(ReconstructOptions(device="gpu")) == "tensorflow"
    assert engines.choose_engine(ReconstructOptions(engine="tensorflow")) == "tensorflow"
    monkeypatch.setattr(engines, "gpu_in_use", lambda device: True)
    assert engines.choose_engine(ReconstructOptions(device="auto")) == "tensorflow"
    with pytest.raises(OptionError, match="runs on the CPU") as info:
        ReconstructOptions(engine="openvino", device="gpu")
    assert info.value.flag == "--engine"


def test_a_gpu_is_in_use_only_with_a_device_and_tensorflows_gpu_build(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(engines.glob, "glob", lambda pattern: ["/dev/nvidia0"])
    monkeypatch.setattr(engines.importlib.metadata, "distribution", lambda name: object())
    assert engines.gpu_in_use("auto") and not engines.gpu_in_use("cpu")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert not engines.gpu_in_use("auto")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")

    def missing(name):
        raise engines.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(engines.importlib.metadata, "distribution", missing)  # tensorflow-cpu
    assert not engines.gpu_in_use("auto")
    monkeypatch.setattr(engines.glob, "glob", lambda pattern: [])
    assert not engines.gpu_in_use("auto")


def test_auto_falls_back_to_tensorflow_once_when_openvino_cannot_be_imported(
    monkeypatch, small_weights_file
):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    monkeypatch.setattr(engines, "_warned", set())
    with pytest.warns(RuntimeWarning, match="TensorFlow instead"):
        assert engines.choose_engine(ReconstructOptions(device="cpu")) == "tensorflow"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: a second choice is silent
        rec = Reconstructor(small_weights_file, device="cpu")
        assert rec.engine == "tensorflow"
    explicit = Reconstructor(small_weights_file, device="cpu", engine="openvino")
    with pytest.raises(RuntimeError, match="engine openvino: the openvino package cannot"):
        explicit.network()
