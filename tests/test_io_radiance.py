"""io.radiance: scanline styles, orientations, exposure, broken files, OpenCV as oracle."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from napari_hdrcnn.io import (
    ImageReadError,
    read_image,
    read_radiance,
)
from testdata import SHARED_DATA

CONFORMANCE = SHARED_DATA / "exr-conformance"
HDR_TRAIN = SHARED_DATA / "hdr" / "train"
needs_conformance = pytest.mark.skipif(
    not CONFORMANCE.is_dir(), reason="shared OpenEXR conformance files not present"
)
needs_hdr_train = pytest.mark.skipif(not HDR_TRAIN.is_dir(), reason="shared HDR files not present")


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


def test_common_files_are_read_by_the_library_and_agree_with_the_decoder_here(
    tmp_path, monkeypatch
):
    from napari_hdrcnn.io import radiance

    rgbe = _random_rgbe(12, 40, seed=7)
    rgbe[..., :3] = np.maximum(rgbe[..., :3], 2)  # no grey power-of-two pixel: no second look
    _write_hdr(tmp_path / "top.hdr", rgbe, ["rle"] * 12, "-Y 12 +X 40")
    here = radiance._decode_here(
        (tmp_path / "top.hdr").read_bytes().split(b"+X 40\n", 1)[1],
        [("-", "Y", 12), ("+", "X", 40)],
        tmp_path / "top.hdr",
    )

    def not_here(*args):
        raise AssertionError("the numpy decoder ran")

    monkeypatch.setattr(radiance, "_decode_here", not_here)
    got = read_radiance(tmp_path / "top.hdr")
    np.testing.assert_array_equal(got, here)
    np.testing.assert_array_equal(got, _rgbe_reference(rgbe))


def test_pixels_an_old_style_marker_could_have_become_are_decoded_here(tmp_path):
    # first scanline new-style RLE (the library's case), then old-style lines made of pairs
    # (a pixel, then (1, 1, 1, 1) repeating it once): as long as flat lines, so rgbe.c, which
    # reads them as flat, consumes the file exactly and would return the markers as pixels
    rgbe = _random_rgbe(6, 24, seed=2)
    rgbe[1:, 0::2] = np.random.default_rng(2).integers(3, 250, (5, 12, 4), dtype=np.uint8)
    rgbe[1:, 1::2] = rgbe[1:, 0::2]
    _write_hdr(tmp_path / "m.hdr", rgbe, ["rle"] + ["old"] * 5, "-Y 6 +X 24")
    np.testing.assert_array_equal(read_radiance(tmp_path / "m.hdr"), _rgbe_reference(rgbe))
