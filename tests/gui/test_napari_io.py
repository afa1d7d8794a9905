"""The napari plugin's manifest, reader, writer, sample data and menus, in a real viewer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from testdata import SHARED_DATA

pytestmark = pytest.mark.gui

PLUGIN = "napari-hdrcnn"
REPO = Path(__file__).resolve().parents[2]
CONFORMANCE = SHARED_DATA / "exr-conformance"


def needs(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


def write_exr(path, pixels, **kwargs):
    from napari_hdrcnn.io import write_exr as write

    write(path, pixels, **kwargs)
    return path


def exr_pixel_types(path) -> set[str]:
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {str(ch.pixels.dtype) for ch in f.channels().values()}


def sunlit_scene() -> np.ndarray:
    """An HDR frame whose tiny sun is 10^4 times brighter than the rest."""
    yy, xx = np.mgrid[0:120, 0:160].astype(np.float32)
    img = np.stack([0.2 + 0.6 * xx / 160, 0.3 + 0.4 * yy / 120, np.full_like(xx, 0.4)], -1)
    img[10:14, 20:24] = 5000.0
    return img.astype(np.float32)


# -- manifest and menus ----------------------------------------------------------------------
def test_manifest_is_valid_and_shipped_in_the_package():
    import npe2

    manifest = npe2.PluginManifest.from_distribution(PLUGIN)
    manifest.validate_imports()  # every python_name imports (none imports TensorFlow)
    assert manifest.name == PLUGIN
    packaged = REPO / "src" / "napari_hdrcnn" / "napari.yaml"
    assert packaged.is_symlink() and packaged.resolve() == (REPO / "napari.yaml").resolve()
    contributions = manifest.contributions
    assert contributions.readers and contributions.writers and contributions.widgets
    assert contributions.sample_data
    assert [m.command for m in contributions.menus["napari/layers/filter"]] == [
        "napari-hdrcnn.reconstruction_widget",
        "napari-hdrcnn.reconstruct_selected",
    ]


def test_widget_is_in_the_plugins_and_layers_filter_menus(make_napari_viewer):
    from napari._app_model import get_app_model

    make_napari_viewer()
    app = get_app_model()
    command = "napari-hdrcnn.reconstruction_widget"

    def commands_in(menu_id):
        found = []
        for item in app.menus.get_menu(menu_id):
            if hasattr(item, "command"):
                found.append(item.command.id)
            elif hasattr(item, "submenu"):
                found += commands_in(item.submenu)
        return found

    assert command in commands_in("napari/layers/filter")
    assert command in commands_in("napari/plugins")


# -- reader --------------------------------------------------------------------------------
def test_getter_claims_hdr_files_and_never_raises(tmp_path):
    from napari_hdrcnn._reader import get_reader

    assert callable(get_reader("scene.exr")) and callable(get_reader("SCENE.HDR"))
    assert callable(get_reader(["a.exr", "b.exr"]))
    for other in ("photo.png", str(tmp_path), ["a.exr", "b.png"], [], None, 42, object(), [None]):
        assert get_reader(other) is None


def test_reader_shows_hdr_at_once_not_a_black_frame(make_napari_viewer, tmp_path):
    scene = write_exr(tmp_path / "sunlit.exr", sunlit_scene(), header={"owner": "tests"})
    viewer = make_napari_viewer(show=True)
    [layer] = viewer.open(str(scene), plugin=PLUGIN)

    assert layer.name == "sunlit" and layer.rgb and layer.data.dtype == np.float32
    lo, hi = layer.contrast_limits
    assert hi < 10.0, "the sun must not set the white point"
    assert layer.gamma == pytest.approx(0.5)
    assert layer.metadata["exr_header"]["owner"] == "tests"
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3]
    assert np.median(shot) > 60, "the image shows as a (nearly) black frame"


@pytest.mark.parametrize(
    "name, rgb",
    [
        ("LuminanceChroma_Garden.exr", False),  # Y only -> grey
        ("Chromaticities_Rec709_YC.exr", True),  # luminance/chroma -> RGB
        ("Beachball_singlepart.0001.exr", True),  # many layers: the default RGB view
        ("TestImages_BrightRingsNanInf.exr", True),  # NaN/Inf kept, display range finite
    ],
)
def test_reader_handles_the_formats_corners(make_napari_viewer, name, rgb):
    from napari_hdrcnn.io import read_exr

    path = needs(CONFORMANCE / name)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin=PLUGIN)
    expected = read_exr(path)
    np.testing.assert_array_equal(layer.data, expected.pixels)
    assert layer.rgb is rgb and layer.data.dtype == np.float32
    assert all(np.isfinite(layer.contrast_limits))
    assert layer.metadata["exr_nonfinite"] == expected.nonfinite
    assert tuple(layer.translate) == (expected.origin[1], expected.origin[0])


def test_reader_opens_the_first_part_of_a_multipart_file(make_napari_viewer, tmp_path):
    import OpenEXR

    def part(value, name):
        return OpenEXR.Part(
            {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
            {"RGB": np.full((8, 10, 3), value, np.float32)},
            name=name,
        )

    path = tmp_path / "two_parts.exr"
    OpenEXR.File([part(0.5, "beauty"), part(2.0, "other")]).write(str(path))
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin=PLUGIN)
    assert layer.data.shape == (8, 10, 3) and np.all(layer.data == 0.5)  # as the core: part 0
    assert layer.metadata["exr_header"]["name"] == "beauty"


def test_reader_reads_radiance_hdr(make_napari_viewer):
    from napari_hdrcnn.io import read_radiance

    path = needs(SHARED_DATA / "hdr" / "val" / "venice_sunset_1k.hdr")
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin=PLUGIN)
    assert layer.name == "venice_sunset_1k" and layer.rgb
    np.testing.assert_array_equal(layer.data, read_radiance(path))


def test_reader_gives_a_clear_error_for_a_broken_file(make_napari_viewer, tmp_path):
    broken = tmp_path / "broken.exr"
    broken.write_bytes(b"v/1\x01" + b"\x00" * 40)  # the magic number, then nothing valid
    viewer = make_napari_viewer()
    with pytest.raises(Exception, match="broken.exr"):
        viewer.open(str(broken), plugin=PLUGIN)
    assert len(viewer.layers) == 0


# -- writer --------------------------------------------------------------------------------
def test_round_trip_open_save_open_gives_the_same_array(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    for name in (
        "Chromaticities_Rec709_YC.exr",
        "TestImages_WideFloatRange.exr",
        "TestImages_stripes.exr",
    ):
        [first] = viewer.open(str(needs(CONFORMANCE / name)), plugin=PLUGIN)
        viewer.layers.selection = {first}
        out = viewer.layers.save(str(tmp_path / name), selected=True, plugin=PLUGIN)
        [again] = viewer.open(out[0], plugin=PLUGIN)
        np.testing.assert_array_equal(again.data, first.data)
        assert again.rgb == first.rgb
    assert not list(tmp_path.glob(".*.tmp")), "a temporary file was left behind"


def test_writer_writes_half_unless_float32_is_asked(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    data = (np.random.default_rng(0).random((20, 30, 3)) * 100).astype(np.float32)
    layer = viewer.add_image(data, rgb=True, name="layer", metadata={"note": "kept"})
    [half] = viewer.layers.save(str(tmp_path / "half.exr"), plugin=PLUGIN)
    assert exr_pixel_types(half) == {"float16"}
    [reread] = viewer.open(half, plugin=PLUGIN)
    np.testing.assert_array_equal(reread.data, data.astype(np.float16).astype(np.float32))
    assert reread.metadata["exr_header"]["note"] == "kept"

    layer.metadata["exr_pixel_type"] = "float32"
    viewer.layers.selection = {layer}
    [full] = viewer.layers.save(str(tmp_path / "full.exr"), selected=True, plugin=PLUGIN)
    assert exr_pixel_types(full) == {"float32"}
    [reread] = viewer.open(full, plugin=PLUGIN)
    np.testing.assert_array_equal(reread.data, data)
    np.testing.assert_array_equal(layer.data, data)  # the layer itself is untouched


def test_time_series_is_written_one_file_per_frame(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    frames = np.stack([sunlit_scene() * k for k in (1.0, 0.5, 0.25)]).astype(np.float16)
    viewer.add_image(frames.astype(np.float32), rgb=True, name="video")
    written = viewer.layers.save(str(tmp_path / "video.exr"), plugin=PLUGIN)
    assert [Path(p).name for p in written] == ["video_0000.exr", "video_0001.exr", "video_0002.exr"]
    [stacked] = viewer.open(written, stack=True, plugin=PLUGIN)
    assert stacked.rgb and stacked.data.shape == frames.shape
    np.testing.assert_array_equal(stacked.data, frames.astype(np.float32))


def test_writer_refuses_what_exr_cannot_hold(tmp_path):
    from napari_hdrcnn._writer import write_exr_layer

    with pytest.raises(ValueError, match="one image"):
        write_exr_layer(
            str(tmp_path / "x.exr"), np.zeros((2, 2, 8, 8, 3), np.float32), {"rgb": True}
        )
    with pytest.raises(ValueError, match="bool"):
        write_exr_layer(str(tmp_path / "x.exr"), np.zeros((8, 8), bool), {"rgb": False})
    assert not list(tmp_path.iterdir())


# -- sample data ----------------------------------------------------------------------------
def test_sample_photo_is_a_clipped_8bit_photo(make_napari_viewer):
    from napari_hdrcnn._sample_data import CLIPPED_PHOTO, DATA_DIR

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "clipped_ldr_photo")
    [layer] = viewer.layers
    assert layer.name == "Clipped LDR photo" and layer.rgb and layer.data.dtype == np.uint8
    assert (layer.data.max(axis=-1) == 255).mean() > 0.03  # highlights blown
    assert "No reference HDR" in layer.metadata["description"]
    assert CLIPPED_PHOTO.stat().st_size < 300_000
    assert "Gabriel Eilertsen" in (DATA_DIR / "LICENSE-samples").read_text()
