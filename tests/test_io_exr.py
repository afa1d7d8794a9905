"""io.exr: OpenEXR conformance files, layers and parts, broken files, writing, headers."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_hdrcnn import io
from napari_hdrcnn.colour import REC709_LUMINANCE
from napari_hdrcnn.io import (
    ImageReadError,
    ImageWriteError,
    compression_names,
    exr,
    read_exr,
    read_image,
    write_exr,
)
from testdata import SHARED_DATA

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
    lum = px @ np.array(REC709_LUMINANCE, np.float32)
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
    np.testing.assert_allclose(exr._luminance_weights(rec709), (0.2126, 0.7152, 0.0722), atol=2e-4)
    assert exr._luminance_weights(None) == REC709_LUMINANCE
    ap1 = (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)  # ACEScg
    w = exr._luminance_weights(ap1)
    np.testing.assert_allclose(w, (0.2722, 0.6741, 0.0537), atol=2e-4)
    assert exr._luminance_weights((0,) * 8) == REC709_LUMINANCE  # degenerate


def test_chroma_upsampling_respects_sample_positions():
    # samples at even coordinates; a data window starting at x=3 holds samples at 4 and 6
    samples = np.array([[10.0, 20.0]], np.float32)
    row = exr._interp_axis(samples, 1, 2, 3, 5)  # pixels x = 3..7
    np.testing.assert_allclose(row[0], [10, 10, 15, 20, 20])
    # an exact sample keeps its value even next to a NaN sample
    with_nan = np.array([[1.0, np.nan, 3.0]], np.float32)
    np.testing.assert_array_equal(exr._interp_axis(with_nan, 1, 2, 0, 5)[0, [0, 4]], [1, 3])


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
    if compression in io.LOSSLESS_COMPRESSIONS or compression == "pxr24":
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
