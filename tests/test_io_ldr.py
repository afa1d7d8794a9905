"""io.ldr: PNG (16-bit through libpng, filters, interlacing, palettes), TIFF, JPEG."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest

import pngdata
from napari_hdrcnn.io import (
    ImageReadError,
    read_image,
    write_png,
)


# -- LDR files ----------------------------------------------------------------------------------
def test_palette_png_becomes_rgb(tmp_path):
    from PIL import Image

    idx = np.arange(12, dtype=np.uint8).reshape(3, 4) % 3
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (253 * 3)
    im = Image.fromarray(idx, mode="P")
    im.putpalette(palette)
    im.save(tmp_path / "p.png")
    got = read_image(tmp_path / "p.png")
    assert got.dtype == np.uint8 and got.shape == (3, 4, 3)
    np.testing.assert_array_equal(got, np.array(palette[:9], np.uint8).reshape(3, 3)[idx])
    im.save(tmp_path / "t.png", transparency=1)
    got = read_image(tmp_path / "t.png")
    assert got.shape == (3, 4, 4)
    np.testing.assert_array_equal(got[..., 3], np.where(idx == 1, 0, 255))


@pytest.mark.parametrize("shape", [(5, 6), (5, 6, 1), (5, 6, 2), (5, 6, 3), (5, 6, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_round_trip(tmp_path, shape, dtype):
    rng = np.random.default_rng(1)
    x = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    write_png(tmp_path / "r.png", x)
    got = read_image(tmp_path / "r.png")
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, x[..., 0] if shape[-1] == 1 else x)


def test_png_writes_only_integer_pixels(tmp_path):
    with pytest.raises(ValueError, match="uint8 or uint16"):
        write_png(tmp_path / "f.png", np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="shape"):
        write_png(tmp_path / "f.png", np.zeros((2, 2, 5), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_16bit_png_from_other_writers_stays_16bit(tmp_path):
    from PIL import Image

    grey = np.arange(30, dtype=np.uint16).reshape(5, 6) * 2000
    Image.fromarray(grey).save(tmp_path / "g.png")  # Pillow's own 16-bit grey
    got = read_image(tmp_path / "g.png")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, grey)
    cv2 = pytest.importorskip("cv2")
    rgb = np.random.default_rng(2).integers(0, 65536, (9, 11, 3)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "c.png"), rgb[..., ::-1])
    got = read_image(tmp_path / "c.png")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, rgb)


def _smooth_noisy(shape, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    channels = shape[2] if len(shape) == 3 else 1
    smooth = (xx * 1700 + yy * 900)[..., None] + np.arange(channels) * 5000
    arr = ((smooth + rng.integers(0, 400, smooth.shape)) % 65536).astype(np.uint16)
    return arr if len(shape) == 3 else arr[..., 0]


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_png_all_filter_types(tmp_path, channels):
    arr = _smooth_noisy((15, 13, channels) if channels > 1 else (15, 13), channels)
    (tmp_path / "f.png").write_bytes(pngdata.png16(arr, filters=(0, 1, 2, 3, 4)))
    got = read_image(tmp_path / "f.png")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, arr)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_interlaced_16bit_png_keeps_16_bits(tmp_path, channels):
    arr = _smooth_noisy((37, 29, channels) if channels > 1 else (37, 29), channels)
    (tmp_path / "i.png").write_bytes(pngdata.png16(arr, interlaced=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to 8 bit, no warning
        got = read_image(tmp_path / "i.png")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, arr)


def test_palette_png_with_partial_transparency_table(tmp_path):
    rng = np.random.default_rng(0)
    idx, palette = rng.integers(0, 4, (9, 7)), rng.integers(0, 256, (4, 3))
    (tmp_path / "p.png").write_bytes(pngdata.palette_png(idx, palette, bytes([255, 0, 128])))
    got = read_image(tmp_path / "p.png")
    alpha = np.array([255, 0, 128, 255])  # entries past the tRNS table are opaque
    np.testing.assert_array_equal(got, np.concatenate([palette, alpha[:, None]], 1)[idx])


def test_16bit_png_written_here_reads_back_elsewhere(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rgba = _smooth_noisy((11, 9, 4), 5)
    write_png(tmp_path / "w.png", rgba)
    got = cv2.imread(str(tmp_path / "w.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(got[..., [2, 1, 0, 3]], rgba)


def test_png_with_absurd_size_is_refused_before_decoding(tmp_path):
    data = bytearray(pngdata.png16(np.zeros((2, 2, 3), np.uint16)))
    data[16:24] = struct.pack(">II", 1 << 20, 1 << 20)  # IHDR width, height
    (tmp_path / "big.png").write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match=r"big\.png: PNG size 1048576x1048576 out of range"):
        read_image(tmp_path / "big.png")


def test_broken_png(tmp_path):
    write_png(tmp_path / "ok.png", np.ones((8, 8, 3), np.uint16))
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) - 20])
    with pytest.raises(ImageReadError, match=r"cut\.png.*truncated"):
        read_image(tmp_path / "cut.png")
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError, match=r"junk\.png.*cannot read"):
        read_image(tmp_path / "junk.png")


def test_tiff_keeps_16bit_and_layout(tmp_path):
    import tifffile

    rgb = np.random.default_rng(3).integers(0, 65536, (6, 7, 3)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    tifffile.imwrite(
        tmp_path / "p.tiff", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate"
    )
    tifffile.imwrite(tmp_path / "g.tif", rgb[..., 0])
    for name in ("c.tif", "p.tiff"):
        got = read_image(tmp_path / name)
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got, rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "g.tif"), rgb[..., 0])


def test_palette_tiff_becomes_rgb(tmp_path):
    import tifffile

    idx = np.arange(20, dtype=np.uint8).reshape(4, 5) % 4
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, :4] = np.array([[0, 65535, 0, 0], [0, 0, 65535, 0], [0, 0, 0, 65535]])
    tifffile.imwrite(tmp_path / "pal.tif", idx, photometric="palette", colormap=cmap)
    got = read_image(tmp_path / "pal.tif")
    assert got.dtype == np.uint8 and got.shape == (4, 5, 3)
    np.testing.assert_array_equal(got[idx == 2], [[0, 255, 0]] * int((idx == 2).sum()))


def test_broken_tiff(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\xff" * 20)
    with pytest.raises(ImageReadError, match=r"bad\.tif"):
        read_image(tmp_path / "bad.tif")


def test_jpeg_reads_with_exif_orientation(tmp_path):
    from PIL import Image

    x = np.zeros((20, 40, 3), np.uint8)
    x[:, :20] = 250  # bright left half
    Image.fromarray(x).save(tmp_path / "plain.jpg", quality=95)
    plain = read_image(tmp_path / "plain.jpg")
    assert plain.dtype == np.uint8 and plain.shape == (20, 40, 3)
    assert plain[:, :15].mean() > 200 and plain[:, 25:].mean() < 50
    exif = Image.Exif()
    exif[0x0112] = 6  # camera held rotated: display turned 90 degrees clockwise
    Image.fromarray(x).save(tmp_path / "rot.jpeg", quality=95, exif=exif)
    rot = read_image(tmp_path / "rot.jpeg")
    assert rot.shape == (40, 20, 3)
    assert rot[:15].mean() > 200 and rot[25:].mean() < 50  # bright half now on top
