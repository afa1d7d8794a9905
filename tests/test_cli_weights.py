"""`hdrcnn weights` end to end: install, list, info, export, and its exit status."""

from __future__ import annotations

from napari_hdrcnn.cli import main
from napari_hdrcnn.weights import load_weights


def test_weights_cli_install_list_info_export(
    tmp_path, monkeypatch, authors_weights_file, small_weights_file, capsys
):
    monkeypatch.setenv("HDRCNN_WEIGHTS_DIR", str(tmp_path / "cache"))
    assert main(["weights", "install", "hdrcnn", str(authors_weights_file)]) == 0
    assert main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    assert "hdrcnn " in listing and "installed" in listing
    assert main(["weights", "info", str(small_weights_file)]) == 0
    assert '"width_factor": 0.125' in capsys.readouterr().out
    dest = tmp_path / "exported.npz"
    assert main(["weights", "export", str(small_weights_file), str(dest)]) == 0
    w = load_weights(dest)
    assert w.width_factor == 0.125 and w.metadata["format"] == "authors"
    assert main(["weights", "install", "hdrcnn", str(tmp_path / "missing.npz")]) == 1


def test_weights_without_an_action_lists(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HDRCNN_WEIGHTS_DIR", str(tmp_path / "cache"))
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    assert "default" in out and f"cache folder: {tmp_path / 'cache'}" in out
