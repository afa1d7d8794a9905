"""io: which files are images, folders of them, and read_image's dispatch by type."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_hdrcnn.io import (
    HDR_EXTENSIONS,
    LDR_EXTENSIONS,
    ImageReadError,
    is_hdr_file,
    list_images,
    read_image,
    write_exr,
)


# -- names and folders --------------------------------------------------------------------------
def test_extensions():
    assert HDR_EXTENSIONS == (".exr", ".hdr")
    assert {".png", ".jpg", ".jpeg", ".tif", ".tiff"} <= set(LDR_EXTENSIONS)
    assert is_hdr_file("a/b.EXR") and is_hdr_file(Path("x.hdr"))
    assert not is_hdr_file("x.png") and not is_hdr_file("exr")


def test_list_images(tmp_path):
    for name in ("b.png", "a.EXR", "c.hdr", "d.JPG", ".hidden.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.png").write_bytes(b"")
    (tmp_path / "dir.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.EXR", "b.png", "c.hdr", "d.JPG"]
    assert list_images(tmp_path / "b.png") == [tmp_path / "b.png"]
    with pytest.raises(ImageReadError, match=r"notes\.txt: not a supported image type"):
        list_images(tmp_path / "notes.txt")
    with pytest.raises(ImageReadError, match=r"empty: no images found"):
        list_images((tmp_path / "empty").mkdir() or tmp_path / "empty")
    with pytest.raises(ImageReadError, match=r"nowhere: no such file or folder"):
        list_images(tmp_path / "nowhere")


def test_read_image_dispatch(tmp_path):
    write_exr(tmp_path / "rgba.exr", np.full((3, 4, 4), 0.5, np.float32))
    got = read_image(tmp_path / "rgba.exr")
    assert got.shape == (3, 4, 3) and got.dtype == np.float32  # alpha left out
    write_exr(tmp_path / "grey.exr", np.full((3, 4), 2.0, np.float32))
    assert read_image(tmp_path / "grey.exr").shape == (3, 4)
    with pytest.raises(ImageReadError, match=r"folder.*not a file"):
        read_image((tmp_path / "folder").mkdir() or tmp_path / "folder")
