"""Weight files: both layouts, round trips, refusals, names, and no code execution."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import zipfile

import numpy as np
import pytest

from napari_hdrcnn import weights as W
from napari_hdrcnn.io.atomic import atomic_write
from napari_hdrcnn.weights import (
    WeightFileError,
    Weights,
    load_weights,
    read_authors_npz,
    read_weights_file,
    write_authors_npz,
    write_weights,
)
from testdata import random_tensors, write_authors_layout


def test_authors_layout_reads_all_80_tensors(authors_weights_file):
    w = read_authors_npz(authors_weights_file)
    assert len(w.tensors) == 80 and w.width_factor == 1.0 and w.linearize == "square"
    expected = random_tensors(1.0, seed=1)
    for a, b in zip(w.tensors, expected):
        np.testing.assert_array_equal(a, b)


def test_project_format_round_trip_keeps_metadata(tmp_path):
    tensors = random_tensors(0.25, seed=7)
    path = tmp_path / "ours.npz"
    write_weights(Weights(tensors, 0.25, "srgb"), path, provenance={"steps": 12})
    w = read_weights_file(path)
    assert w.width_factor == 0.25 and w.linearize == "srgb"
    assert w.metadata["provenance"] == {"steps": 12}
    assert w.metadata["architecture"] == "hdrcnn" and len(w.metadata["sha256"]) == 64
    for a, b in zip(w.tensors, tensors):
        np.testing.assert_array_equal(a, b)
    # no pickle anywhere in our format
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)


def test_blend_round_trips_and_an_unknown_one_is_refused(tmp_path):
    tensors = random_tensors(0.25, seed=7)
    path = tmp_path / "pc.npz"
    write_weights(Weights(tensors, 0.25, "gamma2.2", blend="per-channel"), path)
    assert read_weights_file(path).blend == "per-channel"
    assert read_weights_file(path).metadata["blend"] == "per-channel"
    bad = tmp_path / "bad.npz"
    write_weights(Weights(tensors, 0.25, "gamma2.2"), bad, blend="soft")
    with pytest.raises(WeightFileError, match=r"bad\.npz: unknown blend 'soft'"):
        read_weights_file(bad)
    with pytest.raises(ValueError, match="unknown blend"):
        Weights(tensors, 0.25, "gamma2.2", blend="soft")


def test_average_is_the_tensor_mean_of_files_of_one_width():
    a = Weights(random_tensors(0.125, seed=1), 0.125, "gamma2.2", blend="per-channel")
    b = Weights(random_tensors(0.125, seed=2), 0.125, "square")
    avg = W.average_weights([a, b])
    assert avg.width_factor == 0.125 and avg.linearize == "gamma2.2"
    assert avg.blend == "per-channel"
    for x, y, m in zip(a.tensors, b.tensors, avg.tensors):
        assert m.dtype == np.float32
        np.testing.assert_allclose(m, (x.astype(np.float64) + y) / 2, rtol=1e-6, atol=1e-7)
    wide = Weights(random_tensors(0.25, seed=3), 0.25, source="wide.npz")
    with pytest.raises(WeightFileError, match="wide.npz: width factor 0.25"):
        W.average_weights([a, wide])
    with pytest.raises(ValueError, match="nothing"):
        W.average_weights([])


def test_export_to_authors_layout_round_trips(tmp_path):
    tensors = random_tensors(0.125, seed=8)
    path = tmp_path / "export.npz"
    write_authors_npz(Weights(tensors, 0.125, "gamma2.2"), path)
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["params.npy"]
    w = read_authors_npz(path)
    assert w.width_factor == 0.125
    for a, b in zip(w.tensors, tensors):
        np.testing.assert_array_equal(a, b)
    # and numpy itself (as the authors' TensorLayer does) reads it as an object array of 80
    with np.load(path, allow_pickle=True) as npz:
        assert npz["params"].dtype == object and len(npz["params"]) == 80


def test_wrong_count_is_refused(tmp_path):
    path = write_authors_layout(random_tensors(0.125)[:79], tmp_path / "short.npz")
    with pytest.raises(WeightFileError, match="expected 80 tensors, found 79"):
        read_authors_npz(path)


def test_wrong_shape_is_refused_naming_index_and_both_shapes(tmp_path):
    tensors = random_tensors(0.125)
    tensors[46] = np.zeros((1, 1, 1024, 7), np.float32)
    path = write_authors_layout(tensors, tmp_path / "bad.npz")
    with pytest.raises(WeightFileError) as err:
        read_authors_npz(path)
    msg = str(err.value)
    assert "tensor 46" in msg and "(1, 1, 1024, 7)" in msg and "(1, 1, 128, 64)" in msg
    assert str(path) in msg


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _npy_with_pickle(obj) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|O", "fortran_order": False, "shape": (80,)}
    )
    buf.write(pickle.dumps(obj, protocol=3))
    return buf.getvalue()


def test_crafted_pickle_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("params.npy", _npy_with_pickle([_Exploit(str(marker))]))
    # sanity: numpy's own loader with allow_pickle would run it
    with pytest.raises(WeightFileError, match="refused to load 'builtins.exec'"):
        load_weights(path)
    assert not marker.exists()


def test_pickled_non_array_object_is_refused(tmp_path):
    path = tmp_path / "odd.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("params.npy", _npy_with_pickle({"a": 1}))
    with pytest.raises(WeightFileError, match="object array"):
        load_weights(path)


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04truncated"])
def test_garbage_files_are_refused_with_the_file_named(tmp_path, content):
    path = tmp_path / "garbage.npz"
    path.write_bytes(content)
    with pytest.raises(WeightFileError, match="garbage.npz"):
        load_weights(path)


def test_nan_weights_are_refused(tmp_path):
    tensors = random_tensors(0.125)
    tensors[3][0] = np.nan
    path = write_authors_layout(tensors, tmp_path / "nan.npz")
    with pytest.raises(WeightFileError, match="tensor 3"):
        load_weights(path)


def test_names_resolve_to_cache_and_explain_missing_files(
    tmp_path, monkeypatch, authors_weights_file
):
    monkeypatch.setenv("HDRCNN_WEIGHTS_DIR", str(tmp_path / "cache"))
    with pytest.raises(WeightFileError, match="hdrcnn weights install hdrcnn-compr"):
        W.resolve("hdrcnn-compr")
    dest = W.install("hdrcnn-compr", authors_weights_file)
    assert dest == tmp_path / "cache" / "hdrcnn_params_compr.npz"
    assert W.resolve("hdrcnn-compr") == dest
    rows = {r["name"]: r for r in W.available_weights()}
    assert rows["hdrcnn-compr"]["installed"] and not rows["hdrcnn"]["installed"]
    with pytest.raises(WeightFileError, match="no such weight file"):
        W.resolve(tmp_path / "missing.npz")


def test_install_refuses_a_bad_file_and_leaves_cache_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("HDRCNN_WEIGHTS_DIR", str(tmp_path / "cache"))
    bad = write_authors_layout(random_tensors(0.125)[:10], tmp_path / "bad.npz")
    with pytest.raises(WeightFileError):
        W.install("hdrcnn", bad)
    assert not (tmp_path / "cache" / "hdrcnn_params.npz").exists()


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.npz"

    def failing(tmp):
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert os.listdir(tmp_path) == []


def test_embedded_variant_names_resolve_inside_the_package(
    tmp_path, monkeypatch, small_weights_file
):
    monkeypatch.setattr(W, "embedded_weights_path", lambda name: tmp_path / f"{name}.npz")
    with pytest.raises(WeightFileError, match="not part of this build"):
        W.resolve("default-compr")
    shutil.copyfile(small_weights_file, tmp_path / "default-compr.npz")
    assert W.resolve("default-compr") == tmp_path / "default-compr.npz"
    rows = {r["name"]: r for r in W.available_weights()}
    assert rows["default-compr"]["installed"]
    assert not rows["default-compr-regularized"]["installed"]
    assert W.VIDEO_WEIGHT_NAMES[0] in W.EMBEDDED_DESCRIPTIONS


def test_one_list_of_weight_names_for_the_cli_the_widget_and_the_tables():
    from napari_hdrcnn import evaluate
    from napari_hdrcnn.cli import build_parser

    assert [r["name"] for r in W.available_weights()] == list(W.WEIGHT_NAMES)
    assert set(W.VIDEO_WEIGHT_NAMES) <= set(W.WEIGHT_NAMES)
    assert [evaluate.default_label(n) for n in W.WEIGHT_NAMES] == list(W.WEIGHT_NAMES)
    predict = build_parser()._subparsers._group_actions[0].choices["predict"]
    params_help = next(a.help for a in predict._actions if "--params" in a.option_strings)
    assert all(name in params_help for name in W.WEIGHT_NAMES)


def test_weight_defaults_read_the_metadata_alone(tmp_path, authors_weights_file):
    path = tmp_path / "per_channel.npz"
    W.write_weights(
        W.Weights(random_tensors(0.125), width_factor=0.125, linearize="srgb", blend="per-channel"),
        path,
    )
    assert W.weight_defaults(path) == ("srgb", "per-channel")
    assert W.weight_defaults(path) == (W.load_weights(path).linearize, W.load_weights(path).blend)
    authors = W.load_weights(authors_weights_file)
    assert W.weight_defaults(authors_weights_file) == (authors.linearize, authors.blend)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(W.WeightFileError, match="broken.npz"):
        W.weight_defaults(broken)
