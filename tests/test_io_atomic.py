"""io.atomic and the write guard: outputs appear whole or not at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_hdrcnn import io
from napari_hdrcnn.io import (
    ImageWriteError,
    atomic_output,
    atomic_write,
    write_exr,
    write_png,
)


def test_failed_png_write_leaves_nothing(tmp_path, monkeypatch):
    def failing_encode(arr):
        raise OSError("device gone")

    monkeypatch.setattr(io.ldr, "encode_png16", failing_encode)
    with pytest.raises(ImageWriteError, match=r"out\.png.*device gone"):
        write_png(tmp_path / "out.png", np.zeros((2, 2), np.uint16))
    assert list(tmp_path.iterdir()) == []


def test_write_into_a_file_instead_of_a_folder(tmp_path):
    (tmp_path / "afile").write_bytes(b"")
    with pytest.raises(ImageWriteError, match=r"afile/x\.png"):
        write_png(tmp_path / "afile" / "x.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(ImageWriteError, match=r"afile/x\.exr"):
        write_exr(tmp_path / "afile" / "x.exr", np.zeros((2, 2), np.float32))


def test_atomic_output(tmp_path):
    dest = tmp_path / "sub" / "file.txt"
    with atomic_output(dest) as tmp:
        assert tmp.parent == dest.parent and tmp != dest
        tmp.write_text("done")
        assert not dest.exists()  # nothing visible before the block ends
    assert dest.read_text() == "done"
    assert dest.stat().st_mode & 0o777 == io.new_file_mode()  # not mkstemp's 0600
    with pytest.raises(KeyError):
        with atomic_output(dest) as tmp:
            tmp.write_text("half")
            raise KeyError("stop")
    assert dest.read_text() == "done"
    assert [p.name for p in dest.parent.iterdir()] == ["file.txt"]


def test_atomic_write_calls_back_with_the_temp_path(tmp_path):
    atomic_write(tmp_path / "w.bin", lambda tmp: Path(tmp).write_bytes(b"abc"))
    assert (tmp_path / "w.bin").read_bytes() == b"abc"
    with pytest.raises(ZeroDivisionError):
        atomic_write(tmp_path / "v.bin", lambda tmp: 1 / 0)
    assert [p.name for p in tmp_path.iterdir()] == ["w.bin"]
