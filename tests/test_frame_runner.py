"""The frame runner: videos and image sequences in frame order, in this process or on a Dask
cluster of two worker processes (one cluster for the module), resume, failures, worker death."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_hdrcnn import frames, io
from napari_hdrcnn.cli import main
from napari_hdrcnn.options import ReconstructOptions
from napari_hdrcnn.video_io import open_frames, write_test_video
from napari_hdrcnn.weights import load_weights

N_FRAMES = 7
CPU = ReconstructOptions(device="cpu")
H, W = 64, 96


def _clip(t: int) -> np.ndarray:
    """A frame of a short synthetic clip: a gradient, noise, and a clipped sun that moves."""
    rng = np.random.default_rng(100 + t)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    base = 0.2 + 0.5 * (xx / W)[..., None] * np.array([1.0, 0.8, 0.6], np.float32)
    sun = 3.0 * np.exp(-(((yy - 30) ** 2 + (xx - 20 - 8 * t) ** 2) / 60.0))[..., None]
    img = np.clip(base + sun + rng.normal(0, 0.02, (H, W, 1)), 0, 1)
    return (img * 255 + 0.5).astype(np.uint8)


def _exrs(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: io.read_image(p) for p in sorted(folder.glob("*_out.exr"))}


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return np.stack([_clip(t) for t in range(N_FRAMES)])


@pytest.fixture(scope="module")
def video(tmp_path_factory, clip) -> Path:
    return write_test_video(tmp_path_factory.mktemp("video") / "clip.mkv", clip, fps=12)


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory, video, small_weights_file):
    """The reference: the video reconstructed by the plain loop in this process."""
    out = tmp_path_factory.mktemp("plain")
    report = frames.run_sequence(
        open_frames(video),
        out,
        weights=small_weights_file,
        options=CPU,
        preview_video="preview.mp4",
    )
    return out, report


@pytest.fixture(scope="module")
def cluster():
    from napari_hdrcnn.dask_runner import open_client

    with open_client(workers=2) as client:
        yield client


# -- without a cluster ----------------------------------------------------------------------------
def test_plain_run_of_a_video_writes_numbered_exrs_preview_video_and_stability(plain_run, clip):
    out, report = plain_run
    assert (report.total, report.done, report.skipped, report.failed) == (N_FRAMES, N_FRAMES, 0, [])
    # a video gives only the EXRs (no PNG previews) plus the preview video asked for
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{k:06d}_out.exr" for k in range(1, N_FRAMES + 1)] + ["preview.mp4"]
    )
    assert report.preview_video == out / "preview.mp4"
    preview = open_frames(out / "preview.mp4")
    assert preview.count == N_FRAMES and preview.size == (W, H)
    hdr = io.read_exr(out / "000003_out.exr")
    assert hdr.pixels.shape == (H, W, 3) and hdr.header["hdrcnn_source"] == "clip.mkv#2"
    assert hdr.pixels.max() > 1.0  # the clipped sun was reconstructed above white
    # the figure is the streaming measure over the outputs as written and the inputs, in order
    from napari_hdrcnn.metrics import TemporalStabilityAccumulator

    acc = TemporalStabilityAccumulator()
    for k in range(N_FRAMES):
        acc.add(io.read_image(out / f"{k + 1:06d}_out.exr"), clip[k])
    assert report.stability == acc.result() and report.stability_note == ""


def test_resume_skips_frames_whose_outputs_all_exist(tmp_path, small_weights_file, capsys):
    src = tmp_path / "shots"
    src.mkdir()
    for t in range(4):
        Image.fromarray(_clip(t)).save(src / f"shot_{t + 1}.png")
    out = tmp_path / "out"
    args = [
        "predict",
        "--params",
        str(small_weights_file),
        "--im_dir",
        str(src / "shot_%d.png"),
        "--out_dir",
        str(out),
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    assert "4 of 4 frame(s)" in capsys.readouterr().err
    (out / "000002_in.png").unlink()  # frame 2 is not whole: one of its outputs is missing
    (out / "000004_out.exr").unlink()
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()}
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "2 of 4 frame(s) reconstructed" in err and "2 already in" in err
    for name in ("000001_in.png", "000001_out.exr", "000003_out.png", "000003_out.exr"):
        p = out / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == kept[name]  # not rewritten
    assert (out / "000002_in.png").is_file() and (out / "000004_out.exr").is_file()
    assert main(args + ["--overwrite"]) == 0
    assert "4 of 4 frame(s) reconstructed" in capsys.readouterr().err
    assert (out / "000001_out.exr").stat().st_ino != kept["000001_out.exr"][0]


def test_output_spec_and_stale_temp_files(tmp_path):
    spec = frames.OutputSpec(tmp_path, previews=True)
    for name in ("000001_out.exr", "000001_in.png"):
        (tmp_path / name).write_bytes(b"x")
    assert not spec.is_done(1)  # _out.png missing
    assert frames.OutputSpec(tmp_path, previews=False).is_done(1)
    for name in (
        ".000001_out.exr.k2j3.tmp",
        ".000002_in.png.x.tmp",
        ".notes.txt.a.tmp",
        "000003_out.exr.tmp",
    ):
        (tmp_path / name).write_bytes(b"partial")
    assert frames.remove_stale_temps(tmp_path) == 2
    assert _hidden(tmp_path) == [".notes.txt.a.tmp"]  # not ours: left alone


def _photos(folder: Path, names: list[str]) -> Path:
    folder.mkdir()
    for t, name in enumerate(names):
        Image.fromarray(_clip(t)).save(folder / name)
    return folder


def test_input_stems_are_distinct_and_the_same_every_time():
    paths = [Path(n) for n in ("a/photo.jpg", "a/photo.png", "a/photo_jpg.tif", "a/sky.png")]
    stems, notes = frames.input_stems(paths)
    assert stems == ("photo_jpg_2", "photo_png", "photo_jpg", "sky")
    assert len(set(stems)) == len(stems) and frames.input_stems(paths)[0] == stems
    assert notes == [
        "inputs share the stem 'photo': photo.jpg -> photo_jpg_2_out.exr, "
        "photo.png -> photo_png_out.exr"
    ]
    assert frames.input_stems([Path("x.png")]) == (("x",), [])


def test_names_input_keeps_the_input_names_and_resumes(tmp_path, small_weights_file, capsys):
    src = _photos(tmp_path / "photos", ["beach.png", "sunset.png", "sunset.jpg"])
    out = tmp_path / "out"
    args = ["predict", "--params", str(small_weights_file), "--im_dir", str(src)]
    args += ["--out_dir", str(out), "--no-progress", "--device", "cpu", "--names", "input"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "warning: inputs share the stem 'sunset'" in err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}{suffix}"
        for stem in ("beach", "sunset_png", "sunset_jpg")
        for suffix in ("_out.exr", "_in.png", "_out.png")
    )
    header = io.read_exr(out / "sunset_jpg_out.exr").header
    assert header["hdrcnn_source"] == "sunset.jpg"
    (out / "beach_out.png").unlink()
    assert main(args) == 0  # resume: only beach is redone
    assert "1 of 3 frame(s) reconstructed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args[:-1] + ["files"])  # argparse refuses other namings (exit 2)


def test_names_input_for_a_video_prefixes_the_frame_number(video, small_weights_file, tmp_path):
    report = frames.run_sequence(
        open_frames(video), tmp_path, weights=small_weights_file, options=CPU, names="input"
    )
    assert report.done == N_FRAMES
    assert sorted(p.name for p in tmp_path.glob("*.exr"))[:2] == [
        "clip_000001_out.exr",
        "clip_000002_out.exr",
    ]


def test_preview_video_path_stays_in_the_output_folder_unless_absolute(tmp_path):
    assert frames.preview_video_path("p.mp4", tmp_path) == tmp_path / "p.mp4"
    assert frames.preview_video_path("sub/p.mp4", tmp_path) == tmp_path / "sub" / "p.mp4"
    assert (
        frames.preview_video_path(tmp_path / "x" / "p.mp4", tmp_path / "o")
        == tmp_path / "x" / "p.mp4"
    )


def test_video_hint_only_for_weights_without_temporal_regularisation(small_weights_file):
    w = load_weights(small_weights_file)
    hint = frames.video_weights_hint(w)
    assert hint is not None and "--params" in hint and "regularized" in hint
    w.metadata["regularization"] = "coherence"
    assert frames.video_weights_hint(w) is None
    w.metadata["regularization"] = "none"
    w.source = "/x/hdrcnn_params_compr_regularized.npz"
    assert frames.video_weights_hint(w) is None


def test_reconstruct_stack_without_a_client_is_frame_by_frame(clip, small_weights_file):
    from napari_hdrcnn import reconstruct

    out = frames.reconstruct_stack(clip[:3], small_weights_file, device="cpu", gamma=1.2)
    assert out.shape == (3, H, W, 3) and out.dtype == np.float32
    assert np.array_equal(out[1], reconstruct(clip[1], small_weights_file, device="cpu", gamma=1.2))
    with pytest.raises(TypeError, match="gama"):
        frames.reconstruct_stack(clip[:1], small_weights_file, gama=1.2)
    with pytest.raises(ValueError, match="gamma must be positive"):  # before any frame
        frames.reconstruct_stack(clip[:2], small_weights_file, device="cpu", gamma=-1.0)


# -- on a cluster of two worker processes ---------------------------------------------------------
def test_cluster_gives_the_plain_loop_frames_bit_for_bit(
    cluster, plain_run, video, small_weights_file, tmp_path
):
    plain_out, plain_report = plain_run
    out = tmp_path / "out"
    report = frames.run_sequence(
        open_frames(video), out, weights=small_weights_file, options=CPU, client=cluster
    )
    assert (report.done, report.failed) == (N_FRAMES, [])
    got, want = _exrs(out), _exrs(plain_out)
    assert list(got) == list(want) and len(got) == N_FRAMES
    for name in want:  # the same float32 code on every process: identical bits
        assert np.array_equal(got[name], want[name]), name
    assert report.stability == plain_report.stability  # same outputs, same order
    assert _hidden(out) == []

    # started again: every frame is there already, the figure is the same
    again = frames.run_sequence(
        open_frames(video), out, weights=small_weights_file, options=CPU, client=cluster
    )
    assert (again.done, again.skipped) == (0, N_FRAMES)
    assert again.stability == plain_report.stability


def test_cluster_keeps_a_bounded_number_of_frames_in_flight(
    cluster, video, small_weights_file, tmp_path
):
    from napari_hdrcnn.dask_runner import ClusterBackend

    pulled = []

    def counted(source):
        for frame in source:
            pulled.append(frame.index)
            yield frame

    spec = frames.OutputSpec(tmp_path, previews=False)
    in_flight = []
    consumed = 0
    backend = ClusterBackend(cluster, load_weights(small_weights_file), window=3)
    for outcome in backend.outcomes(counted(open_frames(video)), CPU, spec):
        consumed += 1
        in_flight.append(len(pulled) - consumed)
        assert outcome.number == consumed and outcome.status == "done"
    # while the caller holds a frame, at most `window` more are submitted or waiting
    assert consumed == N_FRAMES and max(in_flight) == 3


def test_cluster_reports_a_bad_frame_and_writes_the_others(cluster, tmp_path, small_weights_file):
    src = tmp_path / "shots"
    src.mkdir()
    for t in range(3):
        Image.fromarray(_clip(t)).save(src / f"f{t}.png")
    (src / "f1.png").write_bytes(b"not a png at all")
    out = tmp_path / "out"
    report = frames.run_sequence(
        open_frames(src), out, weights=small_weights_file, options=CPU, client=cluster
    )
    assert (report.done, len(report.failed)) == (2, 1)
    name, message = report.failed[0]
    assert name == "f1.png" and "f1.png" in message
    assert sorted(p.name for p in out.iterdir()) == [
        "000001_in.png",
        "000001_out.exr",
        "000001_out.png",
        "000003_in.png",
        "000003_out.exr",
        "000003_out.png",
    ]
    assert "1 failed frame(s) left out" in report.stability_note


def test_cluster_writes_input_names_and_resumes(cluster, tmp_path, small_weights_file):
    src = _photos(tmp_path / "photos", ["a.png", "a.jpg", "b.png"])
    out = tmp_path / "out"
    run = dict(weights=small_weights_file, options=CPU, client=cluster, names="input")
    with pytest.warns(UserWarning, match="share the stem 'a'"):
        report = frames.run_sequence(open_frames(src), out, **run)
    assert report.done == 3
    assert sorted(p.name for p in out.glob("*.exr")) == [
        "a_jpg_out.exr",
        "a_png_out.exr",
        "b_out.exr",
    ]
    (out / "b_out.exr").unlink()
    with pytest.warns(UserWarning):
        again = frames.run_sequence(open_frames(src), out, **run)
    assert (again.done, again.skipped) == (1, 2) and (out / "b_out.exr").is_file()


def test_reconstruct_stack_on_the_cluster_matches_the_plain_loop(cluster, clip, small_weights_file):
    plain = frames.reconstruct_stack(clip, small_weights_file, device="cpu", scaling=1.1)
    spread = frames.reconstruct_stack(
        clip, small_weights_file, client=cluster, device="cpu", scaling=1.1
    )
    assert spread.dtype == np.float32 and np.array_equal(spread, plain)
    with pytest.raises(ValueError, match="gamma must be positive"):
        frames.reconstruct_stack(
            clip[:2], small_weights_file, client=cluster, device="cpu", gamma=-1.0
        )


def _cli_on_video(video, weights_file, out: Path, capsys, *extra) -> str:
    code = main(
        [
            "predict",
            "--params",
            str(weights_file),
            "--im_dir",
            str(video),
            "--out_dir",
            str(out),
            "--no-progress",
            "--device",
            "cpu",
            *extra,
        ]
    )
    assert code == 0
    return capsys.readouterr().err


def _stability_line(err: str) -> str:
    return next(line for line in err.splitlines() if line.startswith("temporal stability"))


def test_cli_on_a_cluster_writes_the_plain_cli_exrs(
    cluster, video, small_weights_file, tmp_path, capsys
):
    plain_err = _cli_on_video(video, small_weights_file, tmp_path / "plain", capsys)
    address = cluster.scheduler.address
    dask_err = _cli_on_video(
        video,
        small_weights_file,
        tmp_path / "dask",
        capsys,
        "--scheduler",
        address,
        "--preview-video",
        "p.mp4",
        "--frame-previews",
    )
    got, want = _exrs(tmp_path / "dask"), _exrs(tmp_path / "plain")
    assert list(got) == list(want) and len(got) == N_FRAMES
    assert all(np.array_equal(got[n], want[n]) for n in want)
    assert f"cluster {address}" in dask_err and f"{N_FRAMES} of {N_FRAMES} frame(s)" in dask_err
    assert _stability_line(dask_err) == _stability_line(plain_err)
    assert "hint:" in plain_err and "regularized" in plain_err  # random weights: no regulariser
    written = sorted(p.name for p in (tmp_path / "dask").iterdir())
    assert len(written) == 3 * N_FRAMES + 1 and "p.mp4" in written  # + the PNG previews


@pytest.mark.slow  # starts its own local cluster (two more TensorFlow processes)
def test_cli_with_two_local_workers_writes_the_plain_cli_exrs(
    video, small_weights_file, tmp_path, capsys
):
    plain_err = _cli_on_video(video, small_weights_file, tmp_path / "plain", capsys)
    dask_err = _cli_on_video(video, small_weights_file, tmp_path / "dask", capsys, "--workers", "2")
    got, want = _exrs(tmp_path / "dask"), _exrs(tmp_path / "plain")
    assert list(got) == list(want) and len(got) == N_FRAMES
    assert all(np.array_equal(got[n], want[n]) for n in want)
    assert "2 local worker(s)" in dask_err
    assert _stability_line(dask_err) == _stability_line(plain_err)


# Last: it kills one of the module cluster's workers (its nanny starts a new one).
def test_a_killed_worker_loses_no_frame_and_leaves_no_partial_file(
    cluster, plain_run, video, small_weights_file, tmp_path
):
    victim = sorted(cluster.scheduler_info()["workers"])[0]

    def die_while_writing():
        """On the victim: every EXR write leaves a partial temp file and hangs there."""
        import os
        import time

        from napari_hdrcnn import io

        def hanging_write_exr(path, pixels, **kwargs):
            with io.atomic_output(path) as tmp:
                tmp.write_bytes(b"half an EXR")
                time.sleep(120)

        io.write_exr = hanging_write_exr
        return os.getpid()

    pid = cluster.run(die_while_writing, workers=[victim])[victim]
    out = tmp_path / "out"
    result = {}

    def run():
        result["report"] = frames.run_sequence(
            open_frames(video), out, weights=small_weights_file, options=CPU, client=cluster
        )

    thread = threading.Thread(target=run)
    thread.start()

    def victim_writing() -> bool:  # the other worker's temp files come and go meanwhile
        for name in _hidden(out) if out.is_dir() else []:
            try:
                if (out / name).read_bytes() == b"half an EXR":
                    return True
            except FileNotFoundError:
                pass
        return False

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not victim_writing():
        time.sleep(0.05)
    assert victim_writing(), "the victim never started writing"
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive()
    report = result["report"]
    assert (report.done, report.failed) == (N_FRAMES, [])
    assert report.stale_temps_removed >= 1  # the dead worker's temp file
    assert _hidden(out) == []
    got, want = _exrs(out), _exrs(plain_run[0])
    assert list(got) == list(want) and all(np.array_equal(got[n], want[n]) for n in want)
    assert report.stability == plain_run[1].stability


def test_the_backends_share_a_base_module_and_do_not_import_each_other():
    import ast

    import napari_hdrcnn

    def package_imports(module: str) -> set[str]:
        path = Path(napari_hdrcnn.__file__).parent / f"{module}.py"
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found.add(node.module or "")
        return found

    assert "frames" not in package_imports("dask_runner")
    assert "frame_jobs" in package_imports("dask_runner")
    assert not {"frames", "dask_runner"} & package_imports("frame_jobs")
