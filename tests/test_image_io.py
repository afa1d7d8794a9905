"""image_io: OpenEXR conformance files, Radiance vs OpenCV, round trips, atomic writes, errors."""

from __future__ import annotations

import json
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA
from napari_hdrcnn import image_io
from napari_hdrcnn.image_io import (
    HDR_EXTENSIONS,
    LDR_EXTENSIONS,
    ImageReadError,
    ImageWriteError,
    atomic_output,
    compression_names,
    is_hdr_file,
    list_images,
    read_exr,
    read_image,
    read_radiance,
    write_exr,
    write_png,
)

CONFORMANCE = SHARED_DATA / "exr-conformance"
HDR_TRAIN = SHARED_DATA / "hdr" / "train"
needs_conformance = pytest.mark.skipif(
    not CONFORMANCE.is_dir(), reason="shared OpenEXR conformance files not present"
)
needs_hdr_train = pytest.mark.skipif(not HDR_TRAIN.is_dir(), reason="shared HDR files not present")

# file -> (pixels shape, channels used, has alpha, origin of the data window in the display one)
EXPECTED_EXR = {
    "Beachball_singlepart.0001.exr": ((876, 911, 3), ["R", "G", "B", "A"], True, (654, 245)),
    "Chromaticities_Rec709_YC.exr": ((406, 610, 3), ["Y", "RY", "BY"], False, (0, 0)),
    "DisplayWindow_t01.exr": ((300, 400, 3), ["R", "G", "B"], False, (0, 0)),
    "DisplayWindow_t08.exr": ((300, 400, 3), ["R", "G", "B"], False, (30, 40)),
    "DisplayWindow_t16.exr": ((300, 400, 3), ["R", "G", "B"], False, (40, 40)),
    "LuminanceChroma_Garden.exr": ((493, 874), ["Y"], False, (0, 0)),
    "LuminanceChroma_StarField.exr": ((1000, 1000, 3), ["Y", "RY", "BY"], False, (0, 0)),
    "MultiResolution_PeriodicPattern.exr": ((517, 517, 3), ["R", "G", "B"], False, (0, 0)),
    "TestImages_AllHalfValues.exr": ((256, 256, 3), ["R", "G", "B"], False, (0, 0)),
    "TestImages_BrightRingsNanInf.exr": ((800, 800, 3), ["R", "G", "B"], False, (0, 0)),
    "TestImages_GrayRampsHorizontal.exr": ((800, 800), ["Y"], False, (0, 0)),
    "TestImages_WideFloatRange.exr": ((500, 500), ["G"], False, (0, 0)),
    "TestImages_stripes.exr": ((50, 100, 3), ["R", "G", "B", "A"], True, (0, 0)),
}
CONFORMANCE_FILES = (
    sorted(p.name for p in CONFORMANCE.glob("*.exr")) if CONFORMANCE.is_dir() else []
)


# -- OpenEXR conformance files ------------------------------------------------------------------
@needs_conformance
def test_every_conformance_file_is_covered():
    assert set(CONFORMANCE_FILES) == set(EXPECTED_EXR)


@needs_conformance
@pytest.mark.parametrize("name", CONFORMANCE_FILES)
def test_conformance_exr_reads(name):
    shape, channels, has_alpha, origin = EXPECTED_EXR[name]
    img = read_exr(CONFORMANCE / name)
    assert img.pixels.dtype == np.float32
    assert img.pixels.shape == shape
    assert img.channels == channels
    (x0, y0), (x1, y1) = img.data_window
    assert img.pixels.shape[:2] == (y1 - y0 + 1, x1 - x0 + 1)  # pixels cover the data window
    assert img.origin == origin
    assert (img.alpha is not None) == has_alpha
    if has_alpha:
        assert img.alpha.shape == shape[:2] and img.alpha.dtype == np.float32
    json.dumps(img.header)  # plain values only
    assert img.header["dataWindow"] == [list(img.data_window[0]), list(img.data_window[1])]
    finite = img.pixels[np.isfinite(img.pixels)]
    assert finite.size > 0 and finite.max() > finite.min()  # real content, not a blank
    # read_image gives the same pixels (RGB or grey), alpha left out
    np.testing.assert_array_equal(read_image(CONFORMANCE / name), img.pixels)


@needs_conformance
def test_display_window_differs_from_data_window():
    t08 = read_exr(CONFORMANCE / "DisplayWindow_t08.exr")
    assert t08.display_window == ((0, 0), (500, 400))
    assert t08.data_window == ((30, 40), (429, 339))
    t16 = read_exr(CONFORMANCE / "DisplayWindow_t16.exr")
    assert t16.display_window[0] == (-40, -40)  # negative origin
    assert t16.origin == (40, 40)
    # same picture, different windows: identical pixels
    t01 = read_exr(CONFORMANCE / "DisplayWindow_t01.exr")
    np.testing.assert_array_equal(t08.pixels, t01.pixels)


@needs_conformance
@pytest.mark.parametrize(
    "name", ["TestImages_AllHalfValues.exr", "TestImages_BrightRingsNanInf.exr"]
)
def test_nan_and_inf_are_kept_and_counted(name):
    img = read_exr(CONFORMANCE / name)
    bad = ~np.isfinite(img.pixels)
    assert img.nonfinite == int(bad.sum()) > 0
    assert np.isnan(img.pixels).any() and np.isinf(img.pixels).any()


@needs_conformance
def test_all_half_values_are_all_there():
    px = read_exr(CONFORMANCE / "TestImages_AllHalfValues.exr").pixels
    values = np.unique(px.astype(np.float16).view(np.uint16))
    assert values.size == 65536  # every half bit pattern, NaNs included, survives reading


@needs_conformance
def test_clean_files_have_no_nonfinite():
    for name in (
        "Beachball_singlepart.0001.exr",
        "LuminanceChroma_StarField.exr",
        "TestImages_stripes.exr",
    ):
        assert read_exr(CONFORMANCE / name).nonfinite == 0


@needs_conformance
def test_wide_float_range_keeps_huge_and_tiny_values():
    img = read_exr(CONFORMANCE / "TestImages_WideFloatRange.exr")
    px = img.pixels
    assert img.header["channels"][0]["name"] == "G"
    mag = np.abs(px[np.isfinite(px) & (px != 0)])
    assert mag.max() > 1e30  # far beyond half's 65504
    assert mag.min() < 1e-30  # far below half's smallest subnormal
    assert (px < 0).any() and (px > 0).any()


@needs_conformance
@pytest.mark.parametrize("name", ["Chromaticities_Rec709_YC.exr", "LuminanceChroma_StarField.exr"])
def test_luminance_chroma_gives_finite_rgb(name):
    import OpenEXR

    y = OpenEXR.File(str(CONFORMANCE / name), separate_channels=True).channels()["Y"].pixels
    px = read_exr(CONFORMANCE / name).pixels
    assert px.shape == y.shape + (3,)
    assert np.isfinite(px[np.isfinite(y)]).all()
    # luminance of the rebuilt RGB is the file's Y where the chroma is smooth
    lum = px @ np.array(image_io.REC709_LUMINANCE, np.float32)
    np.testing.assert_allclose(np.median(np.abs(lum - y.astype(np.float32))), 0, atol=1e-3)


@needs_conformance
@pytest.mark.skipif(not (HDR_TRAIN / "Rec709.exr").is_file(), reason="Rec709.exr not present")
def test_luminance_chroma_matches_the_rgb_original():
    """Chromaticities/Rec709_YC.exr is Rec709.exr stored as Y + half-size chroma."""
    rgb = read_exr(HDR_TRAIN / "Rec709.exr").pixels
    yc = read_exr(CONFORMANCE / "Chromaticities_Rec709_YC.exr").pixels
    assert rgb.shape == yc.shape
    err = np.abs(rgb - yc)
    assert err.mean() < 0.03 * rgb.mean()  # chroma subsampling costs only at sharp colour edges
    assert np.median(err) < 0.005


def test_luminance_weights_from_chromaticities():
    rec709 = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)
    np.testing.assert_allclose(
        image_io._luminance_weights(rec709), (0.2126, 0.7152, 0.0722), atol=2e-4
    )
    assert image_io._luminance_weights(None) == image_io.REC709_LUMINANCE
    ap1 = (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)  # ACEScg
    w = image_io._luminance_weights(ap1)
    np.testing.assert_allclose(w, (0.2722, 0.6741, 0.0537), atol=2e-4)
    assert image_io._luminance_weights((0,) * 8) == image_io.REC709_LUMINANCE  # degenerate


def test_chroma_upsampling_respects_sample_positions():
    # samples at even coordinates; a data window starting at x=3 holds samples at 4 and 6
    samples = np.array([[10.0, 20.0]], np.float32)
    row = image_io._interp_axis(samples, 1, 2, 3, 5)  # pixels x = 3..7
    np.testing.assert_allclose(row[0], [10, 10, 15, 20, 20])
    # an exact sample keeps its value even next to a NaN sample
    with_nan = np.array([[1.0, np.nan, 3.0]], np.float32)
    np.testing.assert_array_equal(image_io._interp_axis(with_nan, 1, 2, 0, 5)[0, [0, 4]], [1, 3])


@needs_conformance
def test_multilayer_default_view_and_named_layer():
    path = CONFORMANCE / "Beachball_singlepart.0001.exr"
    default = read_exr(path)
    left = read_exr(path, layer="left")
    assert default.channels == ["R", "G", "B", "A"]
    assert left.channels == ["left.R", "left.G", "left.B", "left.A"]
    assert left.pixels.shape == default.pixels.shape
    assert "disparityL.x" in default.all_channels and len(default.all_channels) == 20
    assert not np.array_equal(left.pixels, default.pixels)  # the other eye
    with pytest.raises(ImageReadError, match="no image channels in layer 'nope'"):
        read_exr(path, layer="nope")
    with pytest.raises(ImageReadError, match="part 3"):
        read_exr(path, part=3)


def test_layers_only_file_uses_first_image_layer(tmp_path):
    import OpenEXR

    rng = np.random.default_rng(0)
    planes = {
        n: rng.random((4, 5)).astype(np.float32)
        for n in ("diffuse.R", "diffuse.G", "diffuse.B", "depth.Z")
    }
    path = tmp_path / "layers.exr"
    OpenEXR.File(
        {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, dict(planes)
    ).write(str(path))  # the binding turns the dict's values to Channels
    img = read_exr(path)
    assert img.channels == ["diffuse.R", "diffuse.G", "diffuse.B"]
    np.testing.assert_array_equal(img.pixels[..., 1], planes["diffuse.G"])
    depth = read_exr(path, layer="depth")
    assert depth.pixels.shape == (4, 5)  # a single channel reads as grey
    np.testing.assert_array_equal(depth.pixels, planes["depth.Z"])


def test_rgb_is_preferred_over_y_and_two_of_rgb_fill_with_zeros(tmp_path):
    import OpenEXR

    ones = np.ones((3, 4), np.float32)
    base = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(dict(base), {"R": ones, "G": 2 * ones, "B": 3 * ones, "Y": 9 * ones}).write(
        str(tmp_path / "rgby.exr")
    )
    assert read_exr(tmp_path / "rgby.exr").channels == ["R", "G", "B"]
    OpenEXR.File(dict(base), {"R": ones, "B": 3 * ones}).write(str(tmp_path / "rb.exr"))
    rb = read_exr(tmp_path / "rb.exr")
    assert rb.channels == ["R", "B"]
    np.testing.assert_array_equal(rb.pixels[0, 0], [1, 0, 3])


def test_multipart_file(tmp_path):
    import OpenEXR

    header = {
        "compression": OpenEXR.ZIP_COMPRESSION,
        "type": OpenEXR.scanlineimage,
        "displayWindow": ((0, 0), (5, 4)),
    }
    rgb = {c: np.full((3, 4), v, np.float32) for c, v in zip("RGB", (1, 2, 3))}
    beauty = OpenEXR.Part(dict(header), rgb, "beauty")
    depth = OpenEXR.Part(dict(header), {"Z": np.full((5, 6), 7, np.float32)}, "depth")
    OpenEXR.File([beauty, depth]).write(str(tmp_path / "mp.exr"))
    first = read_exr(tmp_path / "mp.exr")
    assert first.pixels.shape == (3, 4, 3) and first.header["name"] == "beauty"
    for part in (1, "depth"):
        second = read_exr(tmp_path / "mp.exr", part=part)
        assert second.pixels.shape == (5, 6) and second.channels == ["Z"]
        assert (second.pixels == 7).all()
    with pytest.raises(ImageReadError, match=r"no part named 'nope'.*beauty"):
        read_exr(tmp_path / "mp.exr", part="nope")


# -- broken OpenEXR files -----------------------------------------------------------------------
def test_text_file_named_exr(tmp_path):
    path = tmp_path / "notes.exr"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match=r"notes\.exr.*not an OpenEXR file"):
        read_exr(path)
    with pytest.raises(ImageReadError, match=r"notes\.exr"):
        read_image(path)


@needs_conformance
@pytest.mark.parametrize("fraction", [0.1, 0.6, 0.95])
def test_truncated_exr(tmp_path, fraction):
    data = (CONFORMANCE / "TestImages_BrightRingsNanInf.exr").read_bytes()
    path = tmp_path / "cut.exr"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ImageReadError, match=r"cut\.exr.*(truncated|corrupt|cannot read)"):
        read_image(path)


def test_header_only_fragment_and_missing_file(tmp_path):
    path = tmp_path / "stub.exr"
    path.write_bytes(b"\x76\x2f\x31\x01\x02\x00\x00\x00garbage")  # magic, then nonsense
    with pytest.raises(ImageReadError, match=r"stub\.exr"):
        read_exr(path)
    with pytest.raises(ImageReadError, match=r"missing\.exr: no such file"):
        read_image(tmp_path / "missing.exr")


# -- writing OpenEXR ----------------------------------------------------------------------------
def _test_pixels(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * 50 * rng.random(shape) ** 3 + 1e-3).astype(np.float32)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1), (5, 7, 3), (5, 7, 4)])
@pytest.mark.parametrize("dtype", ["half", "float32"])
def test_exr_round_trip(tmp_path, shape, dtype):
    x = _test_pixels(shape)
    path = tmp_path / "out.exr"
    write_exr(path, x, dtype=dtype)
    img = read_exr(path)
    expected = x.astype(np.float16).astype(np.float32) if dtype == "half" else x
    expected = expected[..., 0] if shape[-1] == 1 else expected
    if len(shape) == 3 and shape[2] == 4:
        np.testing.assert_array_equal(img.pixels, expected[..., :3])
        np.testing.assert_array_equal(img.alpha, expected[..., 3])
        assert img.channels == ["R", "G", "B", "A"]
    else:
        np.testing.assert_array_equal(img.pixels, expected)  # exact: half rounding is fixed
    if dtype == "half":
        np.testing.assert_allclose(
            img.pixels,
            x[..., :3]
            if x.ndim == 3 and x.shape[2] == 4
            else np.squeeze(x, -1)
            if x.ndim == 3 and x.shape[2] == 1
            else x,
            rtol=2**-11,
        )
    kinds = {c["name"] for c in img.header["channels"]}
    assert kinds == set(img.channels)
    assert img.header["compression"] == "zip"


def test_exr_float32_keeps_values_beyond_half(tmp_path):
    x = np.array([[1e-30, 1e6, -3e38, 0.1]], np.float32)
    write_exr(tmp_path / "f.exr", x, dtype="float32")
    np.testing.assert_array_equal(read_exr(tmp_path / "f.exr").pixels, x)


@pytest.mark.parametrize(
    "compression", ["none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab"]
)
def test_exr_compressions(tmp_path, compression):
    yy, xx = np.mgrid[0:24, 0:40].astype(np.float32)
    x = np.stack([xx / 40, yy / 24, 0.5 + 0 * xx], -1) * 4  # smooth: lossy codecs stay close
    path = tmp_path / f"{compression}.exr"
    write_exr(path, x, compression=compression)
    img = read_exr(path)
    assert img.header["compression"] == compression
    half = x.astype(np.float16).astype(np.float32)
    if compression in image_io.LOSSLESS_COMPRESSIONS or compression == "pxr24":
        np.testing.assert_array_equal(img.pixels, half)  # pxr24 is lossless for half
    else:
        np.testing.assert_allclose(img.pixels, half, atol=0.05, rtol=0.05)


def test_every_compression_name_of_the_binding_is_accepted(tmp_path):
    names = compression_names()
    assert {"none", "zip", "piz", "dwaa"} <= set(names)
    for name in names:
        write_exr(tmp_path / "c.exr", np.ones((4, 4), np.float32), compression=name)
        assert read_exr(tmp_path / "c.exr").header["compression"] == name
    write_exr(tmp_path / "c.exr", np.ones((4, 4)), compression="ZIP_COMPRESSION")
    assert read_exr(tmp_path / "c.exr").header["compression"] == "zip"


def test_unknown_compression_and_bad_arguments(tmp_path):
    path = tmp_path / "x.exr"
    with pytest.raises(ValueError, match=r"unknown OpenEXR compression 'lzma'.*zip"):
        write_exr(path, np.zeros((2, 2)), compression="lzma")
    with pytest.raises(ValueError, match="dtype"):
        write_exr(path, np.zeros((2, 2)), dtype="float64")
    with pytest.raises(ValueError, match="shape"):
        write_exr(path, np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="empty"):
        write_exr(path, np.zeros((0, 2, 3)))
    assert list(tmp_path.iterdir()) == []


def test_exr_header_round_trip(tmp_path):
    header = {
        "owner": "napari-hdrcnn tests",
        "comments": "é ünïcode",
        "frame": 12,
        "scale": 1.5,
        "flag": True,
        "views": ["left", "right"],
        "offset": [3, -4],
        "centre": (0.5, 0.25),
        "axis": [1.0, 0.0, 2.0],
        "chromaticities": [0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290],
        "worldToCamera": np.eye(4).tolist(),
        "envmap": "latlong",
        "channels": "ignored: describes the pixels",
        "dataWindow": [[0, 0], [99, 99]],
    }
    path = tmp_path / "h.exr"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # everything above is writable or silently structural
        write_exr(path, np.ones((3, 4, 3), np.float32), header=header)
    got = read_exr(path).header
    for key in ("owner", "comments", "frame", "views", "offset", "centre", "axis"):
        assert (
            got[key] == list(header[key])
            if isinstance(header[key], tuple)
            else got[key] == header[key]
        ), key
    assert got["scale"] == 1.5 and got["flag"] == 1
    np.testing.assert_allclose(got["chromaticities"], header["chromaticities"], rtol=1e-7)
    np.testing.assert_array_equal(got["worldToCamera"], np.eye(4))
    assert got["envmap"] == "ENVMAP_LATLONG"  # written as OpenEXR's envmap type, not a string
    assert got["dataWindow"] == [[0, 0], [3, 2]]  # from the pixels, not the header
    assert [c["name"] for c in got["channels"]] == ["B", "G", "R"]


def test_unwritable_header_entries_warn_and_are_skipped(tmp_path):
    path = tmp_path / "h.exr"
    header = {
        "ok": "yes",
        "none": None,
        "nested": {"a": 1},
        "huge": 2**40,
        "empty": [],
        "mixed": ["a", 1],
        "long": list(range(7)),
        "framesPerSecond": "24/1",
        "envmap": "sphere",
    }
    with pytest.warns(UserWarning) as record:
        write_exr(path, np.ones((2, 2), np.float32), header=header)
    skipped = {k for k in header if any(repr(k) in str(w.message) for w in record)}
    assert skipped == {
        "none",
        "nested",
        "huge",
        "empty",
        "mixed",
        "long",
        "framesPerSecond",
        "envmap",
    }
    got = read_exr(path).header
    assert got["ok"] == "yes" and not skipped & set(got)


@needs_hdr_train
def test_header_read_from_a_file_can_be_written_back(tmp_path):
    src = read_exr(HDR_TRAIN / "city.exr")  # OIIO attributes, chromaticities, string lists
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_exr(tmp_path / "copy.exr", src.pixels[:8, :8], header=src.header)
    got = read_exr(tmp_path / "copy.exr").header
    for key in ("Software", "PhotoshopLayerInfo", "capDate", "chromaticities"):
        assert got[key] == src.header[key], key


def test_half_overflow_is_clipped_with_a_warning(tmp_path):
    x = np.array([[1e6, -1e6, 70000.0, 1.0, np.inf, np.nan]], np.float32)
    before = x.copy()
    with pytest.warns(UserWarning, match="3 values beyond the half-float range"):
        write_exr(tmp_path / "o.exr", x)
    np.testing.assert_array_equal(x, before)  # the caller's array is untouched
    got = read_exr(tmp_path / "o.exr")
    np.testing.assert_array_equal(got.pixels[0, :5], [65504, -65504, 65504, 1, np.inf])
    assert np.isnan(got.pixels[0, 5]) and got.nonfinite == 2


# -- atomic writes ------------------------------------------------------------------------------
def test_failed_exr_write_leaves_nothing(tmp_path, monkeypatch):
    import OpenEXR

    def failing_write(self, path):
        Path(path).write_bytes(b"partial")  # what a crash halfway leaves behind
        raise RuntimeError("disk full")

    monkeypatch.setattr(OpenEXR.File, "write", failing_write)
    with pytest.raises(ImageWriteError, match=r"new\.exr.*disk full"):
        write_exr(tmp_path / "new.exr", np.ones((2, 2), np.float32))
    assert list(tmp_path.iterdir()) == []
    # an existing file stays as it was
    (tmp_path / "old.exr").write_bytes(b"previous")
    with pytest.raises(ImageWriteError):
        write_exr(tmp_path / "old.exr", np.ones((2, 2), np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["old.exr"]
    assert (tmp_path / "old.exr").read_bytes() == b"previous"


def test_failed_png_write_leaves_nothing(tmp_path, monkeypatch):
    def failing_encode(arr):
        raise OSError("device gone")

    monkeypatch.setattr(image_io, "_encode_png16", failing_encode)
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
    assert dest.stat().st_mode & 0o777 == image_io._new_file_mode()  # not mkstemp's 0600
    with pytest.raises(KeyError):
        with atomic_output(dest) as tmp:
            tmp.write_text("half")
            raise KeyError("stop")
    assert dest.read_text() == "done"
    assert [p.name for p in dest.parent.iterdir()] == ["file.txt"]


def test_weights_atomic_file_shares_the_mechanism(tmp_path):
    from napari_hdrcnn.weights import atomic_file

    atomic_file(tmp_path / "w.bin", lambda tmp: Path(tmp).write_bytes(b"abc"))
    assert (tmp_path / "w.bin").read_bytes() == b"abc"
    with pytest.raises(ZeroDivisionError):
        atomic_file(tmp_path / "v.bin", lambda tmp: 1 / 0)
    assert [p.name for p in tmp_path.iterdir()] == ["w.bin"]


# -- Radiance RGBE ------------------------------------------------------------------------------
def _rgbe_reference(rgbe: np.ndarray) -> np.ndarray:
    e = rgbe[..., 3:].astype(np.float64)
    return np.where(e > 0, rgbe[..., :3] * 2.0 ** (e - 136), 0).astype(np.float32)


def _random_rgbe(h, w, seed=0):
    """Pixels with long runs (RLE-friendly) and noisy stretches, some zero exponents."""
    rng = np.random.default_rng(seed)
    rgbe = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    rgbe[..., 3] = rng.integers(120, 145, (h, w))
    blocks = np.repeat(rng.integers(0, 256, (h, w // 6 + 1, 4), dtype=np.uint8), 6, axis=1)[:, :w]
    rgbe[:, : w // 2] = blocks[:, : w // 2]
    rgbe[0, :3, 3] = 0  # black pixels
    return rgbe


def _rle_component(vals: bytes) -> bytes:
    out, i, n = bytearray(), 0, len(vals)
    while i < n:
        j = i
        while j < n and vals[j] == vals[i] and j - i < 127:
            j += 1
        if j - i >= 3:
            out += bytes([128 + j - i, vals[i]])
            i = j
            continue
        k = i
        while k < n and k - i < 128 and not (k + 2 < n and vals[k] == vals[k + 1] == vals[k + 2]):
            k += 1
        out += bytes([k - i]) + vals[i:k]
        i = k
    return bytes(out)


def _scanline(row: np.ndarray, style: str) -> bytes:
    w = row.shape[0]
    if style == "flat":
        return row.tobytes()
    if style == "old":  # old-style RLE: (1, 1, 1, n) repeats the previous pixel n times
        out, x = bytearray(), 0
        while x < w:
            out += row[x].tobytes()
            n = 1
            while x + n < w and n < 255 and np.array_equal(row[x + n], row[x]):
                n += 1
            if n > 1:
                out += bytes([1, 1, 1, n - 1])
            x += n
        return bytes(out)
    return bytes([2, 2, w >> 8, w & 255]) + b"".join(
        _rle_component(row[:, c].tobytes()) for c in range(4)
    )


def _write_hdr(path, scanlines: np.ndarray, styles, resolution: str, extra: str = "") -> None:
    lines = [
        "#?RADIANCE",
        "# test file",
        "FORMAT=32-bit_rle_rgbe",
        *extra.splitlines(),
        "",
        resolution,
    ]
    head = "\n".join(lines).encode() + b"\n"
    body = b"".join(_scanline(line, style) for line, style in zip(scanlines, styles))
    Path(path).write_bytes(head + body)


@pytest.mark.parametrize("style", ["rle", "flat", "old", "mixed"])
def test_radiance_scanline_styles(tmp_path, style):
    rgbe = _random_rgbe(9, 40)
    styles = [("rle", "flat", "old")[i % 3] for i in range(9)] if style == "mixed" else [style] * 9
    path = tmp_path / "s.hdr"
    _write_hdr(path, rgbe, styles, "-Y 9 +X 40")
    got = read_radiance(path)
    assert got.dtype == np.float32 and got.shape == (9, 40, 3)
    np.testing.assert_array_equal(got, _rgbe_reference(rgbe))
    np.testing.assert_array_equal(read_image(path), got)


def test_radiance_narrow_image_is_flat(tmp_path):
    rgbe = _random_rgbe(3, 5)  # width < 8 cannot be new-style RLE
    _write_hdr(tmp_path / "n.hdr", rgbe, ["flat"] * 3, "-Y 3 +X 5")
    np.testing.assert_array_equal(read_radiance(tmp_path / "n.hdr"), _rgbe_reference(rgbe))


@pytest.mark.parametrize(
    "resolution", ["-Y 8 +X 10", "+Y 8 +X 10", "-Y 8 -X 10", "+X 10 -Y 8", "-X 10 +Y 8"]
)
def test_radiance_orientations(tmp_path, resolution):
    image = _random_rgbe(8, 10, seed=3)  # what the viewer should see, top row first
    stored = image
    axes = resolution.split()[::2]
    if axes[0][1] == "X":
        stored = stored.transpose(1, 0, 2)  # scanlines are columns
        if axes[0] == "-X":
            stored = stored[::-1]
        if axes[1] == "+Y":
            stored = stored[:, ::-1]
    else:
        if axes[0] == "+Y":
            stored = stored[::-1]
        if axes[1] == "-X":
            stored = stored[:, ::-1]
    _write_hdr(tmp_path / "o.hdr", np.ascontiguousarray(stored), ["rle"] * len(stored), resolution)
    np.testing.assert_array_equal(read_radiance(tmp_path / "o.hdr"), _rgbe_reference(image))


def test_radiance_exposure(tmp_path):
    rgbe = _random_rgbe(4, 12)
    _write_hdr(tmp_path / "e.hdr", rgbe, ["rle"] * 4, "-Y 4 +X 12", extra="EXPOSURE=2\nEXPOSURE=4")
    plain = read_radiance(tmp_path / "e.hdr")
    np.testing.assert_array_equal(plain, _rgbe_reference(rgbe))  # not applied by default
    np.testing.assert_allclose(
        read_radiance(tmp_path / "e.hdr", apply_exposure=True), plain / 8, rtol=1e-7
    )


def test_radiance_bad_exposure_is_ignored(tmp_path):
    rgbe = _random_rgbe(2, 12)
    _write_hdr(
        tmp_path / "x.hdr", rgbe, ["rle"] * 2, "-Y 2 +X 12", extra="EXPOSURE=0\nEXPOSURE=oops"
    )
    with pytest.warns(UserWarning) as record:
        got = read_radiance(tmp_path / "x.hdr", apply_exposure=True)
    assert sorted(str(w.message).split(": ")[-1] for w in record) == [
        "EXPOSURE='0' ignored",
        "EXPOSURE='oops' ignored",
    ]
    np.testing.assert_array_equal(got, _rgbe_reference(rgbe))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d[: len(d) - 30], "truncated"),
        (lambda d: b"P6\n" + d, "not a Radiance file"),
        (lambda d: d.replace(b"-Y 8 +X 16", b"-Y 8 +Y 16"), "bad Radiance resolution"),
        (lambda d: d.replace(b"-Y 8 +X 16", b"-Y 99999 +X 99999"), "too large"),
        (lambda d: d.replace(b"32-bit_rle_rgbe", b"32-bit_rle_xyze"), "xyze"),
        (lambda d: d.replace(b"\n\n", b"\n"), "no end"),
    ],
)
def test_broken_radiance_files(tmp_path, damage, message):
    _write_hdr(tmp_path / "ok.hdr", _random_rgbe(8, 16), ["rle"] * 8, "-Y 8 +X 16")
    path = tmp_path / "bad.hdr"
    path.write_bytes(damage((tmp_path / "ok.hdr").read_bytes()))
    with pytest.raises(ImageReadError, match=rf"bad\.hdr.*{message}"):
        read_radiance(path)


def test_corrupt_rle_run_is_refused(tmp_path):
    path = tmp_path / "r.hdr"
    bad_line = bytes([2, 2, 0, 16, 128 + 20, 7])  # a run of 20 in a 16-pixel line
    path.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 16\n" + bad_line + b"\0" * 64)
    with pytest.raises(ImageReadError, match=r"r\.hdr.*corrupt RLE"):
        read_radiance(path)


@needs_hdr_train
def test_radiance_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    files = sorted(HDR_TRAIN.glob("*.hdr"))[:5]
    assert files
    for path in files:
        ours = read_radiance(path)
        ref = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)[..., ::-1]
        assert ours.shape == ref.shape and ours.shape[2] == 3, path.name
        np.testing.assert_allclose(ours, ref, rtol=1e-7, atol=0, err_msg=path.name)


def test_synthetic_radiance_matches_opencv(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rgbe = _random_rgbe(7, 33, seed=5)
    _write_hdr(tmp_path / "c.hdr", rgbe, ["rle"] * 7, "-Y 7 +X 33")
    ref = cv2.imread(str(tmp_path / "c.hdr"), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)[..., ::-1]
    np.testing.assert_array_equal(read_radiance(tmp_path / "c.hdr"), ref)


@needs_hdr_train
def test_radiance_reads_fast():
    path = sorted(HDR_TRAIN.glob("*.hdr"))[0]
    best = np.inf
    for _ in range(2):
        start = time.perf_counter()
        read_radiance(path)
        best = min(best, time.perf_counter() - start)
    assert best < 1.0  # ~0.1 s here; a per-pixel Python decoder would take ~10 s


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


def _png16_with_filters(path, arr, filters):
    """A 16-bit PNG whose rows use the given PNG filter types (0-4)."""
    h, w, c = arr.shape
    raw = arr.astype(">u2").reshape(h, w * c).view(np.uint8).reshape(h, w, 2 * c).astype(int)
    left, up, ul = np.zeros_like(raw), np.zeros_like(raw), np.zeros_like(raw)
    left[:, 1:], up[1:], ul[1:, 1:] = raw[:, :-1], raw[:-1], raw[:-1, :-1]
    p = left + up - ul
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - ul)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
    predictors = [0 * raw, left, up, (left + up) // 2, paeth]
    rows = b"".join(
        bytes([f]) + ((raw[y] - predictors[f][y]) % 256).astype(np.uint8).tobytes()
        for y, f in enumerate(filters)
    )
    colour = {2: 4, 3: 2, 4: 6}[c]
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    Path(path).write_bytes(
        image_io.PNG_SIGNATURE
        + image_io._png_chunk(b"IHDR", ihdr)
        + image_io._png_chunk(b"IDAT", zlib.compress(rows))
        + image_io._png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16bit_png_all_filter_types(tmp_path, channels):
    rng = np.random.default_rng(channels)
    yy, xx = np.mgrid[0:15, 0:13]
    smooth = (xx * 3000 + yy * 1500)[..., None] + np.arange(channels) * 700
    arr = (smooth + rng.integers(0, 300, smooth.shape)).astype(np.uint16)
    filters = [0, 1, 2, 3, 4] * 3
    _png16_with_filters(tmp_path / "f.png", arr, filters)
    np.testing.assert_array_equal(read_image(tmp_path / "f.png"), arr)
    _png16_with_filters(tmp_path / "g.png", arr, [0, 1, 2] * 5)  # the row-at-a-time path
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), arr)


def test_interlaced_16bit_colour_png_falls_back_to_8bit(tmp_path):
    # a 1x1 Adam7 image holds its one pixel in pass 1, laid out as a plain image would be
    data = bytearray(image_io._encode_png16(np.array([[[65535, 32896, 0]]], np.uint16)))
    ihdr = bytes(data[12:29])
    ihdr = ihdr[:16] + b"\x01"  # interlace method 1
    data[8:33] = struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    (tmp_path / "i.png").write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="interlaced 16-bit colour PNG read as 8 bit"):
        got = read_image(tmp_path / "i.png")
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, [[[255, 128, 0]]])


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
