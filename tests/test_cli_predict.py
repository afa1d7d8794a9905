"""`hdrcnn predict` end to end."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from napari_hdrcnn import io
from napari_hdrcnn.cli import main
from napari_hdrcnn.weights import load_weights
from numpy_reference import forward_final


def _photo(h, w, seed):
    rng = np.random.default_rng(seed)
    img = (rng.uniform(0, 1, (h, w, 3)) ** 0.4 * 255).astype(np.uint8)
    img[h // 4 : h // 2, w // 4 : w // 2] = 255
    return img


def test_help_is_instant_and_lists_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "napari_hdrcnn.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "predict" in out.stdout and "weights" in out.stdout
    code = (
        "import sys, napari_hdrcnn.cli as c; c.build_parser(); print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_predict_reference_sizing_reproduces_the_numpy_spec(tmp_path, authors_weights_file):
    img = _photo(80, 72, seed=0)
    Image.fromarray(img).save(tmp_path / "photo.png")
    out = tmp_path / "out"
    code = main(
        [
            "predict",
            "--params",
            str(authors_weights_file),
            "--im_dir",
            str(tmp_path / "photo.png"),
            "--out_dir",
            str(out),
            "--width",
            "64",
            "--height",
            "64",
            "--gamma",
            "1.2",
            "--linearize",
            "square",
            "--exr-dtype",
            "float32",
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "000001_in.png",
        "000001_out.exr",
        "000001_out.png",
    ]
    hdr = io.read_image(out / "000001_out.exr")
    assert hdr.shape == (64, 64, 3) and hdr.dtype == np.float32
    # the same crop + resize as the reference predictor, then the independent implementation
    from napari_hdrcnn.reconstruct import reference_resize

    x = reference_resize(img.astype(np.float32) / 255, 64, 64)
    expected = forward_final(x, load_weights(authors_weights_file).tensors, gamma=1.2)
    np.testing.assert_allclose(np.log(hdr + 1 / 255), np.log(expected + 1 / 255), atol=1e-4)
    preview = np.asarray(Image.open(out / "000001_out.png"))
    assert preview.shape == (64, 64, 3) and preview.dtype == np.uint8 and preview.max() > 0


def test_predict_blend_option_reaches_the_reconstruction(tmp_path, small_weights_file, capsys):
    from napari_hdrcnn.reconstruct import reconstruct

    img = _photo(64, 96, seed=3)
    Image.fromarray(img).save(tmp_path / "photo.png")
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                "--params",
                str(small_weights_file),
                "--im_dir",
                str(tmp_path / "photo.png"),
                "--out_dir",
                str(out),
                "--blend",
                "per-channel",
                "--exr-dtype",
                "float32",
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "blend per-channel" in capsys.readouterr().err
    expected = reconstruct(img, small_weights_file, blend="per-channel", device="cpu")
    np.testing.assert_allclose(io.read_image(out / "000001_out.exr"), expected, rtol=1e-6)


def test_predict_batch_goes_on_past_a_bad_frame(tmp_path, small_weights_file, capsys):
    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(_photo(50, 70, 1)).save(src / "a.png")
    (src / "b.jpg").write_bytes(b"this is not a jpeg")
    Image.fromarray(_photo(40, 33, 2)).save(src / "c.png")
    out = tmp_path / "out"
    code = main(
        [
            "predict",
            "--params",
            str(small_weights_file),
            "--im_dir",
            str(src),
            "--out_dir",
            str(out),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "b.jpg" in err and "FAILED" in err and "2 of 3 frame(s)" in err
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "000001_in.png",
        "000001_out.exr",
        "000001_out.png",
        "000003_in.png",
        "000003_out.exr",
        "000003_out.png",
    ]
    a = io.read_image(out / "000001_out.exr")
    c = io.read_image(out / "000003_out.exr")
    assert a.shape == (50, 70, 3) and c.shape == (40, 33, 3)  # native sizing keeps the size


def test_predict_explains_missing_weights_and_inputs(tmp_path, capsys):
    code = main(["predict", "--im_dir", str(tmp_path), "--out_dir", str(tmp_path / "o")])
    assert code == 1 and "no images found" in capsys.readouterr().err  # a failure, not usage
    Image.fromarray(_photo(32, 32, 0)).save(tmp_path / "p.png")
    code = main(
        [
            "predict",
            "--params",
            str(tmp_path / "nope.npz"),
            "--im_dir",
            str(tmp_path),
            "--out_dir",
            str(tmp_path / "o"),
        ]
    )
    assert code == 1 and "nope.npz" in capsys.readouterr().err
    code = main(["predict", "--im_dir", str(tmp_path), "--width", "64"])
    assert code == 2 and "--height" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_runs(tmp_path, small_weights_file):
    Image.fromarray(_photo(64, 64, 3)).save(tmp_path / "p.png")
    from pathlib import Path

    script = Path(sys.executable).parent / "hdrcnn"  # the console script installed beside python
    out = subprocess.run(
        [
            str(script),
            "predict",
            "--params",
            str(small_weights_file),
            "--im_dir",
            str(tmp_path / "p.png"),
            "--out_dir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "o" / "000001_out.exr").is_file()


def test_temporal_stability_is_printed_for_sequences_not_for_a_folder_of_photos(
    tmp_path, small_weights_file, capsys
):
    rng = np.random.default_rng(3)
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(2):
        io.write_png(folder / f"f_{k:02d}.png", rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    args = ["predict", "--params", str(small_weights_file), "--no-progress"]
    assert main(args + ["--im_dir", str(folder), "--out_dir", str(tmp_path / "a")]) == 0
    assert "temporal stability" not in capsys.readouterr().err
    pattern = str(folder / "f_%02d.png")
    assert main(args + ["--im_dir", pattern, "--out_dir", str(tmp_path / "b")]) == 0
    assert "temporal stability:" in capsys.readouterr().err
