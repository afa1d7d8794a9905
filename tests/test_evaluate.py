"""The evaluation protocol: test inputs, labels, tables, and `hdrcnn evaluate` end to end."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_hdrcnn import evaluate, metrics
from napari_hdrcnn.cli import main
from napari_hdrcnn.io import jpeg_round_trip, read_image, write_exr
from napari_hdrcnn.weights import sha256_of
from test_metrics import scene
from testdata import SHARED_DATA


# -- test inputs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("clip", [95.0, 97.0])
def test_camera_clips_the_requested_fraction(clip):
    hdr = scene(96, 128) * np.random.default_rng(0).uniform(0.5, 2.0, (96, 128, 1)).astype(
        np.float32
    )
    ldr, e = evaluate.camera_ldr(hdr, clip)
    assert ldr.dtype == np.uint8 and ldr.shape == hdr.shape
    white = (ldr.max(axis=-1) == 255).mean()
    assert (100 - clip) / 100 * 0.8 < white < (100 - clip) / 100 * 1.2
    # below white the camera is x^(1/2.2), rounded
    px = np.unravel_index(np.argmin(hdr.max(axis=-1)), hdr.shape[:2])
    expected = np.floor((hdr[px] * e) ** (1 / 2.2) * 255 + 0.5)
    np.testing.assert_array_equal(ldr[px], expected)


def test_camera_refuses_a_black_image():
    with pytest.raises(evaluate.EvaluationError, match="too dark"):
        evaluate.camera_exposure(np.zeros((8, 8, 3), np.float32), 95)


def test_jpeg_round_trip_is_deterministic():
    ldr, _ = evaluate.camera_ldr(scene(), 95)
    a, data_a = jpeg_round_trip(ldr, 90)
    b, data_b = jpeg_round_trip(ldr, 90)
    assert data_a[:2] == b"\xff\xd8" and data_a == data_b
    np.testing.assert_array_equal(a, b)
    assert a.shape == ldr.shape and 0 < np.abs(a.astype(int) - ldr).mean() < 3


def test_ldr_linear_is_gamma_2_2():
    ldr = np.array([[[0, 128, 255]]], np.uint8)
    np.testing.assert_allclose(
        evaluate.ldr_linear(ldr)[0, 0], [0, (128 / 255) ** 2.2, 1], rtol=1e-6
    )
    assert evaluate.ldr_linear(ldr.astype(np.uint16) * 257)[0, 0, 2] == pytest.approx(1.0)


# -- names, labels, statistics -------------------------------------------------------------------
def test_names_are_sanitised_and_unique():
    paths = [Path("a b.exr"), Path("a b.hdr"), Path("../../evil$.exr"), Path("...exr")]
    names = evaluate.unique_names(paths)
    assert names == ["a_b", "a_b_hdr", "evil", "image"]
    assert all("/" not in n and not n.startswith(".") for n in names)


def test_method_labels():
    assert evaluate.method_labels(["default", "/x/my weights.npz", "/y/my weights.npz"], None) == [
        "default",
        "my_weights",
        "my_weights-2",
    ]
    assert evaluate.method_labels(["a.npz"], ["ours"]) == ["ours"]
    with pytest.raises(evaluate.EvaluationError, match="1 label"):
        evaluate.method_labels(["a.npz", "b.npz"], ["ours"])
    with pytest.raises(evaluate.EvaluationError, match="reserved"):
        evaluate.method_labels(["a.npz"], ["ldr_linear"])
    assert evaluate.method_labels(["/x/ldr_linear.npz"], None) == ["ldr_linear-2"]


def test_confidence_interval_is_the_t_interval():
    mean, half, n = evaluate.confidence_interval([1.0, 3.0])
    assert (mean, n) == (2.0, 2)
    assert half == pytest.approx(12.7062, abs=1e-4)  # t(0.975, 1) * sqrt(2) / sqrt(2)
    mean, half, n = evaluate.confidence_interval([2.0, float("nan"), 4.0, 6.0])
    assert (mean, n) == (4.0, 3) and half == pytest.approx(4.3027 * 2 / math.sqrt(3), rel=1e-4)
    assert math.isnan(evaluate.confidence_interval([5.0])[1])
    assert evaluate.confidence_interval([1.0, math.inf])[0] == math.inf


def test_summary_rows_and_worst_difference():
    def row(image, method, psnr):
        r = {m: 0.5 for m in metrics.ALL_METRIC_NAMES}
        r.update(image=image, clip="95", jpeg="", method=method, pu21_psnr=psnr)
        return r

    rows = [
        row("a", "ldr_linear", 30.0),
        row("a", "net", 32.0),
        row("b", "ldr_linear", 25.0),
        row("b", "net", 23.5),
    ]
    summary = evaluate.summarise(rows, ["ldr_linear", "net"])
    assert [(s["method"], s["n"]) for s in summary] == [("ldr_linear", 2), ("net", 2)]
    assert summary[1]["pu21_psnr"] == pytest.approx(27.75)
    assert summary[1]["worst_pu21_psnr_vs_ldr_linear"] == pytest.approx(-1.5)
    assert summary[0]["worst_pu21_psnr_vs_ldr_linear"] == 0.0


def test_colour_ramp_runs_dark_to_light():
    ramp = evaluate.colour_ramp(np.linspace(0, 1, 9)).astype(int).sum(axis=-1)
    assert np.all(np.diff(ramp) > 0)


# -- the command end to end ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def references(tmp_path_factory) -> Path:
    """Two small scenes as EXR: a synthetic one, and a crop of a real one when it is there."""
    folder = tmp_path_factory.mktemp("refs")
    write_exr(folder / "synthetic sun.exr", scene(64, 96, seed=3), dtype="float32")
    real = SHARED_DATA / "hdr" / "val" / "leadenhall_market_1k.hdr"
    if real.is_file():
        crop = evaluate.downscale(read_image(real), 256)[24:88, 100:196]
    else:
        crop = scene(64, 96, seed=4) ** 1.3
    write_exr(folder / "second.exr", np.ascontiguousarray(crop), dtype="float32")
    (folder / "notes.txt").write_text("not an image")
    return folder


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_cli(*argv: str) -> int:
    return main(["evaluate", *map(str, argv)])


def test_cli_end_to_end_on_two_small_scenes(references, small_weights_file, tmp_path, capsys):
    out = tmp_path / "out"
    rc = run_cli(
        "--reference",
        references,
        "--params",
        small_weights_file,
        "--label",
        "net",
        "--clip",
        "95",
        "97",
        "--out",
        out,
    )
    printed = capsys.readouterr().out
    assert rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing outside --out

    per_image = read_csv(out / "per_image.csv")
    assert len(per_image) == 2 * 2 * 2  # images x clip levels x methods
    assert {r["method"] for r in per_image} == {"ldr_linear", "net"}
    assert {r["image"] for r in per_image} == {"synthetic_sun", "second"}

    summary = read_csv(out / "summary.csv")
    assert [(r["method"], r["clip"]) for r in summary] == [
        ("ldr_linear", "95"),
        ("net", "95"),
        ("ldr_linear", "97"),
        ("net", "97"),
    ]
    for column in (
        "method",
        "clip",
        "pu21_psnr",
        "pu21_psnr_clipped",
        "pu21_ssim",
        "log_rmse_clipped",
        "pu21_psnr+CRF",
        "pu21_psnr_clipped+CRF",
        "pu21_ssim+CRF",
        "log_rmse_clipped+CRF",
        "pu21_psnr_ci95",
    ):
        assert column in summary[0]
    assert all(math.isfinite(float(r["pu21_psnr"])) for r in summary)

    # the printed table carries the summary's numbers to its digits
    base95 = summary[0]
    assert f"{float(base95['pu21_psnr']):.2f} ±{float(base95['pu21_psnr_ci95']):.2f}" in printed
    assert "aligned + CRF correction" in printed and "sha256" in printed

    settings = json.loads((out / "settings.json").read_text())
    assert settings["protocol"]["clip_levels"] == [95.0, 97.0]
    assert settings["methods"][1]["sha256"] == sha256_of(small_weights_file)
    assert settings["methods"][1]["label"] == "net"
    assert settings["command"][:2] == ["hdrcnn", "evaluate"]
    assert settings["protocol"]["confidence_interval"].startswith("mean +- t(0.975, n-1)")
    assert len(settings["references"]) == 2

    # the baseline's numbers, recomputed independently from the written input
    ldr = read_image(out / "inputs" / "second_clip95.png")
    ref = read_image(references / "second.exr")
    direct = metrics.score(evaluate.ldr_linear(ldr), ref, ldr).metrics
    row = next(
        r
        for r in per_image
        if r["image"] == "second" and r["clip"] == "95" and r["method"] == "ldr_linear"
    )
    for name in metrics.ALL_METRIC_NAMES:
        assert float(row[name]) == pytest.approx(direct[name], abs=2e-6), name

    figures = sorted((out / "figures").iterdir())
    assert [f.name for f in figures] == [
        "second_clip95.png",
        "second_clip97.png",
        "synthetic_sun_clip95.png",
        "synthetic_sun_clip97.png",
    ]
    sheet = read_image(figures[0])
    assert sheet.ndim == 3 and sheet.shape[0] == 2 * (64 + 14) + 4  # two methods, one row each
    assert sheet.shape[1] == 4 * 96 + 3 * 4  # input | reconstruction | reference | error

    # reproducible: a second run writes the same tables, byte for byte
    out2 = tmp_path / "again"
    assert (
        run_cli(
            "--reference",
            references,
            "--params",
            small_weights_file,
            "--label",
            "net",
            "--clip",
            "95",
            "97",
            "--no-figures",
            "--out",
            out2,
        )
        == 0
    )
    for name in ("per_image.csv", "summary.csv"):
        assert (out / name).read_bytes() == (out2 / name).read_bytes()
    assert not (out2 / "figures").exists()


def test_cli_blend_override_is_used_and_recorded(references, small_weights_file, tmp_path, capsys):
    from napari_hdrcnn.reconstruct import reconstruct

    out = tmp_path / "pc"
    assert (
        run_cli(
            "--reference",
            references,
            "--params",
            small_weights_file,
            "--label",
            "net",
            "--clip",
            "95",
            "--blend",
            "per-channel",
            "--no-figures",
            "--out",
            out,
        )
        == 0
    )
    assert "blend per-channel" in capsys.readouterr().out
    settings = json.loads((out / "settings.json").read_text())
    assert settings["protocol"]["blend_override"] == "per-channel"
    assert settings["methods"][1]["blend"] == "per-channel"
    assert "--blend" in settings["command"]
    ldr = read_image(out / "inputs" / "second_clip95.png")
    pred = reconstruct(ldr, small_weights_file, blend="per-channel", device="cpu")
    direct = metrics.score(pred, read_image(references / "second.exr"), ldr).metrics
    row = next(
        r
        for r in read_csv(out / "per_image.csv")
        if r["image"] == "second" and r["method"] == "net"
    )
    assert float(row["pu21_psnr_clipped"]) == pytest.approx(direct["pu21_psnr_clipped"], abs=2e-6)


def test_cli_jpeg_and_given_inputs(references, small_weights_file, tmp_path, capsys):
    out = tmp_path / "jpeg"
    assert (
        run_cli(
            "--reference",
            references / "second.exr",
            "--params",
            small_weights_file,
            "--jpeg",
            "90",
            "--no-figures",
            "--out",
            out,
        )
        == 0
    )
    assert (out / "inputs" / "second_clip95_q90.jpg").read_bytes()[:2] == b"\xff\xd8"
    rows = read_csv(out / "per_image.csv")
    assert {r["jpeg"] for r in rows} == {"90"}

    # the same inputs given as files reproduce the numbers
    given = tmp_path / "given"
    given.mkdir()
    shutil.copy(out / "inputs" / "second_clip95_q90.jpg", given / "second.jpg")
    out2 = tmp_path / "given_out"
    assert (
        run_cli(
            "--reference",
            references / "second.exr",
            "--params",
            small_weights_file,
            "--ldr",
            given,
            "--out",
            out2,
        )
        == 0
    )
    rows2 = read_csv(out2 / "per_image.csv")
    assert {r["clip"] for r in rows2} == {"given"}
    for a, b in zip(rows, rows2):
        assert a["method"] == b["method"]
        assert float(a["pu21_psnr"]) == pytest.approx(float(b["pu21_psnr"]), abs=1e-6)
    assert (out2 / "figures" / "second.png").is_file()


def test_cli_errors_name_the_problem(references, small_weights_file, tmp_path, capsys):
    """Work that fails exits 1; a command line that cannot be used exits 2 (naming the option)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "photo.png").write_bytes(b"")
    weights = ["--params", small_weights_file]
    cases = [
        (1, "no HDR reference images", ["--reference", empty, *weights]),
        (1, "missing.npz", ["--reference", references, "--params", tmp_path / "missing.npz"]),
        (2, "--clip", ["--reference", references, *weights, "--clip", "100"]),
        (2, "reserved", ["--reference", references, *weights, "--label", "ldr_linear"]),
        (1, "no LDR input named", ["--reference", references, *weights, "--ldr", tmp_path]),
        (
            2,
            "given LDR inputs (--ldr) are used as they are",
            ["--reference", references, *weights, "--ldr", tmp_path, "--jpeg", "90"],
        ),
    ]
    for k, (status, message, argv) in enumerate(cases, 1):
        try:
            code = run_cli(*argv, "--out", tmp_path / f"o{k}")
        except SystemExit as stop:  # argparse's own refusal
            code = stop.code
        assert code == status, message
        assert message in capsys.readouterr().err
    assert not any((tmp_path / f"o{k}").exists() for k in (1, 2, 3, 4, 6))
