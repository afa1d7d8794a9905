"""ReconstructOptions: defaults, checks with the option's name, the CLI generated from it, and
bad options refused before any frame is read."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from napari_hdrcnn import frames, options
from napari_hdrcnn.cli import build_parser, main
from napari_hdrcnn.cli import evaluate as cli_evaluate
from napari_hdrcnn.cli import predict as cli_predict
from napari_hdrcnn.options import OptionError, ReconstructOptions


def test_defaults_are_the_documented_ones():
    o = ReconstructOptions()
    assert (o.gamma, o.scaling, o.linearize, o.blend, o.sizing) == (1.0, 1.0, None, None, "native")
    assert (o.tile, o.overlap, o.memory_budget_mb, o.device) == (None, 64, 4096, "auto")
    assert o.engine == "auto"
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.gamma = 2.0
    for f in dataclasses.fields(o):
        assert options.help_text(f.name), f.name


@pytest.mark.parametrize(
    "fields,option,flag",
    [
        ({"gamma": 0}, "gamma", "--gamma"),
        ({"gamma": float("nan")}, "gamma", "--gamma"),
        ({"scaling": -1.0}, "scaling", "--scaling"),
        ({"linearize": "cubic"}, "linearize", "--linearize"),
        ({"blend": "soft"}, "blend", "--blend"),
        ({"sizing": "huge"}, "sizing", None),
        ({"sizing": "reference", "width": 64}, "height", "--height"),
        ({"width": 0}, "width", "--width"),
        ({"tile": 100}, "tile", "--tile"),
        ({"tile": 32}, "tile", "--tile"),
        ({"overlap": -1}, "overlap", "--overlap"),
        ({"memory_budget_mb": 0}, "memory_budget_mb", "--memory-budget"),
        ({"device": "tpu"}, "device", "--device"),
        ({"engine": "torch"}, "engine", "--engine"),
        ({"engine": "openvino", "device": "gpu"}, "engine", "--engine"),
    ],
)
def test_bad_values_name_the_option(fields, option, flag):
    with pytest.raises(OptionError) as info:
        ReconstructOptions(**fields)
    err = info.value
    assert isinstance(err, ValueError) and err.option == option and err.flag == flag
    assert option in str(err)
    if flag is not None:
        assert flag in err.cli_message
    # replace() checks again
    with pytest.raises(OptionError):
        ReconstructOptions().replace(**fields)


def test_unknown_names_and_wrong_types_are_refused():
    with pytest.raises(TypeError, match="gama"):
        ReconstructOptions(gama=1.2)
    with pytest.raises(TypeError, match="ReconstructOptions"):
        ReconstructOptions.of("cpu")


def test_of_merges_fields_into_options():
    base = ReconstructOptions(gamma=1.2, device="cpu")
    assert ReconstructOptions.of(base, tile=64) == ReconstructOptions(
        gamma=1.2, device="cpu", tile=64
    )
    assert ReconstructOptions.of() == ReconstructOptions()


def _parse(*argv):
    return build_parser().parse_args(list(argv))


def test_cli_arguments_are_generated_from_the_fields():
    # every option a command takes is a field with a flag, and its defaults are the fields'
    for module in (cli_predict, cli_evaluate):
        for name in module.OPTIONS:
            assert options.cli_flag(name) is not None
    assert options.from_args(_parse("predict", "--im_dir", "x")) == ReconstructOptions()
    assert options.from_args(_parse("evaluate", "--reference", "r", "--out", "o")) == (
        ReconstructOptions()
    )
    args = _parse(
        "predict",
        "--im_dir",
        "x",
        "--width",
        "64",
        "--height",
        "32",
        "--gamma",
        "1.2",
        "--tile",
        "128",
        "--memory-budget",
        "512",
        "--blend",
        "per-channel",
        "--device",
        "cpu",
        "--engine",
        "tensorflow",
    )
    assert options.from_args(args) == ReconstructOptions(
        sizing="reference",
        width=64,
        height=32,
        gamma=1.2,
        tile=128,
        memory_budget_mb=512.0,
        blend="per-channel",
        device="cpu",
        engine="tensorflow",
    )
    help_text = build_parser()._subparsers._group_actions[0].choices["predict"].format_help()
    for name in cli_predict.OPTIONS:
        assert options.cli_flag(name) in help_text


def test_the_cli_refuses_a_bad_option_before_reading_any_frame(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(src / "p.png")
    out = tmp_path / "out"
    code = main(["predict", "--im_dir", str(src), "--out_dir", str(out), "--gamma", "0"])
    assert code == 2 and "--gamma must be positive" in capsys.readouterr().err
    assert not out.exists()
    code = main(["predict", "--im_dir", str(src), "--out_dir", str(out), "--tile", "100"])
    assert code == 2 and "--tile must be a multiple of 32" in capsys.readouterr().err
    assert not out.exists()


class _CountingSource:
    """Frames whose reading is counted: a bad option must stop the run before the first."""

    kind = "images"

    def __init__(self):
        self.reads = 0

    def __iter__(self):
        from napari_hdrcnn.video_io import Frame

        self.reads += 1
        yield Frame(index=0, name="f", pixels=np.zeros((32, 32, 3), np.uint8))


def test_the_frame_runner_takes_only_options_objects(tmp_path, small_weights_file):
    source = _CountingSource()
    with pytest.raises(TypeError, match="ReconstructOptions"):
        frames.run_sequence(source, tmp_path, weights=small_weights_file, options={"gamma": 2})
    with pytest.raises(OptionError, match="tile"):
        frames.reconstruct_stack(np.zeros((2, 32, 32, 3), np.uint8), small_weights_file, tile=1)
    assert source.reads == 0


def test_a_reconstructor_runs_only_on_its_own_device(small_weights_file):
    from napari_hdrcnn.reconstruct import Reconstructor

    rec = Reconstructor(small_weights_file, device="cpu")
    assert rec.options == ReconstructOptions(device="cpu")
    with pytest.raises(ValueError, match="Reconstructor of their own"):
        rec.run(np.zeros((32, 32, 3), np.uint8), ReconstructOptions(device="gpu"))


def test_the_widget_builds_its_options_object():
    from napari_hdrcnn import _widget

    assert _widget.run_options(_widget.DEFAULTS) == ReconstructOptions()
    settings = dict(_widget.DEFAULTS, sizing="reference", tile="128", device="cpu", gamma=1.3)
    settings["engine"] = "tensorflow"
    assert _widget.run_options(settings) == ReconstructOptions(
        sizing="reference",
        width=1024,
        height=768,
        tile=128,
        device="cpu",
        gamma=1.3,
        engine="tensorflow",
    )
