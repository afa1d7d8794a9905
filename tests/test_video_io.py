"""Video and image-sequence input, the preview video writer, streaming temporal stability."""

from __future__ import annotations

import os
import pickle
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from napari_hdrcnn import metrics
from napari_hdrcnn.io import ImageReadError, ImageWriteError, write_exr, write_png
from napari_hdrcnn.video_io import (
    Frame,
    PreviewVideoWriter,
    ffmpeg_exe,
    is_video,
    open_frames,
    write_test_video,
)

W, H = 64, 48


def noise_frames(n: int, width: int = W, height: int = H, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


def moving_gradient(n: int, width: int, height: int):
    """Compressible frames (a gradient sliding one pixel per frame), made one at a time."""
    x = np.arange(width)[None, :, None]
    y = np.arange(height)[:, None, None]
    for k in range(n):
        yield ((x + y + k + np.array([0, 40, 80])) % 256).astype(np.uint8)


def ffmpeg_children() -> list[int]:
    """Process ids of the live ffmpeg processes below this one (psutil, else /proc)."""
    try:
        import psutil
    except ImportError:
        return _ffmpeg_children_from_proc()
    return [
        p.pid
        for p in psutil.Process().children(recursive=True)
        if "ffmpeg" in p.name() and p.status() != psutil.STATUS_ZOMBIE
    ]


def _ffmpeg_children_from_proc() -> list[int]:
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs psutil or /proc to see child processes")
    table = {}  # pid -> (parent pid, command name, state)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        state, ppid = text[text.rindex(")") + 2 :].split()[:2]
        table[int(stat.parent.name)] = (int(ppid), name, state)
    ours, found = {os.getpid()}, True
    while found:  # grow the set of descendants until it stops growing
        found = False
        for pid, (ppid, _, _) in table.items():
            if ppid in ours and pid not in ours:
                ours.add(pid)
                found = True
    return [
        pid for pid in ours if pid in table and "ffmpeg" in table[pid][1] and table[pid][2] != "Z"
    ]


def run_ffmpeg(*args: str) -> None:
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", *args],
        check=True,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def noise_video(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    frames = noise_frames(8)
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_test_video(path, frames, fps=25)
    return path, frames


# -- videos in ----------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".mov"])
def test_lossless_round_trip(tmp_path, ext):
    frames = noise_frames(8, seed=3)
    path = write_test_video(tmp_path / f"clip{ext}", frames, fps=12.5)
    source = open_frames(path)
    assert (source.kind, source.count, len(source), source.fps, source.size) == (
        "video",
        8,
        8,
        12.5,
        (W, H),
    )
    got = list(source)
    assert [f.index for f in got] == list(range(8))
    assert got[3].name == f"clip{ext}#3" and got[3].path is None
    for want, frame in zip(frames, got):
        pixels = frame.read()
        assert pixels.dtype == np.uint8 and pixels.shape == (H, W, 3)
        np.testing.assert_array_equal(pixels, want)
    assert not ffmpeg_children()


def test_source_iterates_again_and_frames_pickle(noise_video):
    path, frames = noise_video
    source = open_frames(path, fps=10)
    assert source.fps == 10  # a given fps overrides the container's
    first = [f.read().copy() for f in source]
    second = list(source)
    assert len(first) == len(second) == 8
    np.testing.assert_array_equal(second[5].read(), frames[5])
    clone = pickle.loads(pickle.dumps(second[5]))  # what a Dask worker receives
    assert clone.index == 5 and clone.name == second[5].name
    np.testing.assert_array_equal(clone.read(), frames[5])
    with pytest.raises(ValueError):  # handed-out pixels are read-only: no one changes them
        second[0].read()[0, 0, 0] = 1


def test_count_is_corrected_when_decoding_disagrees(noise_video):
    path, _ = noise_video
    source = open_frames(path)
    source.count = 11  # as if the container had listed frames the decoder could not make
    with pytest.warns(RuntimeWarning, match="decoded 8 frames, the container lists 11"):
        assert len(list(source)) == 8
    assert len(source) == 8
    source.count = None
    with pytest.raises(TypeError, match="number of frames unknown"):
        len(source)


def test_lossy_video_decodes_close_to_what_was_written(tmp_path):
    frames = list(moving_gradient(4, 64, 48))
    source = open_frames(write_test_video(tmp_path / "phone.mp4", frames, 30, lossless=False))
    got = [f.read().astype(int) for f in source]
    assert len(got) == 4 and source.fps == 30
    assert np.mean(np.abs(got[2] - frames[2])) < 8  # yuv420p and quantisation, not garbage


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """200 frames of 128x96: 7 MiB decoded, far more than a pipe holds, so ffmpeg is still
    running while the first frames are handed out."""
    path = tmp_path_factory.mktemp("video") / "long.mkv"
    return write_test_video(path, moving_gradient(200, 128, 96), fps=50)


def test_decoding_streams_one_frame_at_a_time(long_video):
    path, n = long_video, 200
    frame_bytes = 128 * 96 * 3
    tracemalloc.start()
    try:
        count = 0
        checksum = 0
        for frame in open_frames(path):
            checksum += int(frame.read()[0, 0, 0])
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n and checksum > 0
    assert peak < 12 * frame_bytes, f"peak {peak} bytes: frames are being kept"  # all: 200


def test_leaving_the_loop_early_stops_ffmpeg(long_video):
    path = long_video
    for frame in open_frames(path):
        assert ffmpeg_children(), "the check below would prove nothing"
        if frame.index == 2:
            break
    assert not ffmpeg_children()

    with pytest.raises(RuntimeError, match="consumer failed"):
        for _frame in open_frames(path):
            raise RuntimeError("consumer failed")
    assert not ffmpeg_children()

    frames = iter(open_frames(path))  # kept alive, but closed explicitly
    next(frames)
    frames.close()
    assert not ffmpeg_children()


def test_damaged_videos_are_refused_with_their_name(tmp_path, noise_video):
    path, _ = noise_video
    data = path.read_bytes()  # written with its index (moov) in front: decodes up to the cut
    cut_front = tmp_path / "cut_front.mp4"
    cut_front.write_bytes(data[: len(data) // 2])

    moov_last = tmp_path / "moov_last.mp4"
    run_ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x48:rate=25:duration=2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(moov_last),
    )
    cut_back = tmp_path / "cut_back.mp4"
    cut_back.write_bytes(moov_last.read_bytes()[:-2000])
    assert open_frames(moov_last).count == 50  # the untruncated file is fine

    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    mkv = write_test_video(tmp_path / "full.mkv", noise_frames(6), 25)
    cut_mkv = tmp_path / "cut.mkv"
    cut_mkv.write_bytes(mkv.read_bytes()[: mkv.stat().st_size // 2])

    for bad, problem in [
        (cut_front, "partial file"),
        (cut_back, "moov atom not found"),
        (garbage, "invalid data"),
        (empty, "empty file"),
        (cut_mkv, "ended prematurely"),
    ]:
        with pytest.raises(ImageReadError, match=str(bad)) as err:
            open_frames(bad)
        assert problem in str(err.value).lower()
    assert not ffmpeg_children()


def test_file_without_video_stream(tmp_path):
    audio = tmp_path / "sound.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "sine=duration=0.3", "-c:a", "aac", str(audio))
    with pytest.raises(ImageReadError, match=f"{audio}: no video stream"):
        open_frames(audio)
    song = tmp_path / "song.mp4"  # audio with cover art: a one-picture "video" stream
    write_png(tmp_path / "cover.png", noise_frames(1)[0])
    run_ffmpeg(
        "-i",
        str(audio),
        "-i",
        str(tmp_path / "cover.png"),
        "-map",
        "0",
        "-map",
        "1",
        "-c:a",
        "copy",
        "-c:v",
        "png",
        "-disposition:v:0",
        "attached_pic",
        str(song),
    )
    with pytest.raises(ImageReadError, match=f"{song}: no video stream .*cover picture"):
        open_frames(song)


def test_cover_picture_before_the_video_is_skipped(tmp_path, noise_video):
    path, frames = noise_video
    write_png(tmp_path / "cover.png", np.zeros((16, 16, 3), np.uint8))
    both = tmp_path / "with_cover.mp4"
    run_ffmpeg(
        "-i",
        str(tmp_path / "cover.png"),
        "-i",
        str(path),
        "-map",
        "0",
        "-map",
        "1",
        "-c:v:0",
        "png",
        "-c:v:1",
        "copy",
        "-disposition:v:0",
        "attached_pic",
        str(both),
    )
    source = open_frames(both)
    assert (source.count, source.size, source.fps) == (8, (W, H), 25)
    np.testing.assert_array_equal(list(source)[7].read(), frames[7])


def test_rotated_video_gives_upright_frames_quietly(tmp_path, noise_video, caplog):
    path, frames = noise_video
    portrait = tmp_path / "portrait.mp4"  # as phones store it: landscape pixels + a rotation
    run_ffmpeg("-display_rotation", "90", "-i", str(path), "-c", "copy", str(portrait))
    source = open_frames(portrait)
    assert source.size == (H, W)
    got = list(source)[1].read()
    np.testing.assert_array_equal(got, np.rot90(frames[1]))  # counter-clockwise by 90
    assert "frame size" not in caplog.text


def test_hdr_video_is_read_with_a_warning(tmp_path):
    hlg = tmp_path / "hlg.mp4"
    run_ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x48:rate=25:duration=0.2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p10le",
        "-x264-params",
        "colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc",
        str(hlg),
    )
    with pytest.warns(RuntimeWarning, match="HDR video"):
        source = open_frames(hlg)
    assert source.count == 5 and list(source)[0].read().dtype == np.uint8


# -- image sequences ----------------------------------------------------------------------------
def make_pngs(folder: Path, names: list[str]) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for k, name in enumerate(names):
        images[name] = np.full((6, 10, 3), 10 * k, np.uint8)
        write_png(folder / name, images[name])
    return images


def test_folder_in_natural_order(tmp_path):
    images = make_pngs(
        tmp_path / "shots", ["frame10.png", "frame2.png", "frame1.png", "Frame3.png", ".hidden.png"]
    )
    (tmp_path / "shots" / "notes.txt").write_text("not an image")
    source = open_frames(tmp_path / "shots")
    assert (source.kind, source.count, source.fps, source.size) == ("images", 4, None, (10, 6))
    frames = list(source)
    assert [f.name for f in frames] == ["frame1.png", "frame2.png", "Frame3.png", "frame10.png"]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert frames[1].pixels is None and frames[1].path == tmp_path / "shots" / "frame2.png"
    np.testing.assert_array_equal(frames[3].read(), images["frame10.png"])
    assert open_frames(tmp_path / "shots", fps=24).fps == 24


def test_single_image_file(tmp_path):
    images = make_pngs(tmp_path, ["one.png"])
    source = open_frames(tmp_path / "one.png")
    (frame,) = list(source)
    assert source.kind == "images" and len(source) == 1
    np.testing.assert_array_equal(frame.read(), images["one.png"])


def test_printf_pattern(tmp_path):
    make_pngs(tmp_path, ["f_0010.png", "f_0002.png", "f_0001.png", "f_12.png", "g_0003.png"])
    padded = open_frames(tmp_path / "f_%04d.png")
    assert [f.name for f in padded] == ["f_0001.png", "f_0002.png", "f_0010.png"]
    plain = open_frames(str(tmp_path / "f_%d.png"))
    assert [f.name for f in plain] == ["f_0001.png", "f_0002.png", "f_0010.png", "f_12.png"]
    with pytest.raises(ImageReadError, match="no files match"):
        open_frames(tmp_path / "h_%04d.png")


def test_glob_pattern(tmp_path):
    make_pngs(tmp_path, ["b10.png", "b9.png", "a.png"])
    (tmp_path / "b5.txt").write_text("")
    assert [f.name for f in open_frames(tmp_path / "b*")] == ["b9.png", "b10.png"]
    assert [f.name for f in open_frames(tmp_path / "*.png")] == ["a.png", "b9.png", "b10.png"]
    with pytest.raises(ImageReadError, match="no image files match"):
        open_frames(tmp_path / "*.txt")


def test_missing_and_empty_inputs(tmp_path, noise_video):
    (tmp_path / "empty").mkdir()
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(noise_video[0].read_bytes())
    (tmp_path / "data.bin").write_bytes(b"123")
    for path, problem in [
        (tmp_path / "nothing", "no such file or folder"),
        (tmp_path / "missing.mp4", "no such file or folder"),
        (tmp_path / "empty", "no images found"),
        (tmp_path / "videos", r"no images in .*, only videos \(a.mp4\)"),
        (tmp_path / "data.bin", "not a video or image file"),
    ]:
        with pytest.raises(ImageReadError, match=f"{path}: {problem}"):
            open_frames(path)


def test_frame_read_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ImageReadError, match=str(bad)):
        Frame(index=0, name=bad.name, path=bad).read()
    exr = tmp_path / "already.exr"
    write_exr(exr, np.ones((4, 4, 3), np.float32))
    with pytest.raises(ImageReadError, match=f"{exr}: already an HDR image"):
        Frame(index=0, name=exr.name, path=exr).read()


def test_is_video():
    assert is_video("a/b/CLIP.MOV") and is_video(Path("x.mkv")) and is_video("x.webm")
    assert not is_video("x.png") and not is_video("x.exr") and not is_video("mp4")


# -- preview video out --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["preview.mp4", "preview.webm"])
def test_preview_writer_makes_a_readable_video(tmp_path, name):
    target = tmp_path / "out" / name  # the folder is created
    frames = list(moving_gradient(5, 64, 48))
    with PreviewVideoWriter(target, fps=24) as writer:
        for f in frames:
            writer.write(f)
    assert writer.frames_written == 5
    source = open_frames(target)
    assert (source.count, source.fps, source.size) == (5, 24, (64, 48))
    assert np.mean(np.abs(list(source)[4].read().astype(int) - frames[4])) < 8
    assert [p.name for p in target.parent.iterdir()] == [name]


def test_preview_writer_is_atomic(tmp_path):
    target = tmp_path / "preview.mp4"
    with pytest.raises(RuntimeError, match="reconstruction failed"):
        with PreviewVideoWriter(target, fps=24) as writer:
            writer.write(noise_frames(1)[0])
            raise RuntimeError("reconstruction failed")
    assert list(tmp_path.iterdir()) == []  # neither the video nor a temp file
    assert not ffmpeg_children()

    target.write_bytes(b"an older preview")
    with pytest.raises(ValueError, match="is 32x32, the video is 64x48"):
        with PreviewVideoWriter(target, fps=24) as writer:
            writer.write(noise_frames(1)[0])
            writer.write(np.zeros((32, 32, 3), np.uint8))
    assert target.read_bytes() == b"an older preview"
    assert [p.name for p in tmp_path.iterdir()] == ["preview.mp4"]

    with pytest.raises(ValueError, match="no frames written"):
        with PreviewVideoWriter(tmp_path / "nothing.mp4", fps=24):
            pass
    assert not (tmp_path / "nothing.mp4").exists()


def test_preview_writer_pads_odd_sizes(tmp_path):
    frame = np.zeros((47, 63, 3), np.uint8)
    frame[:, :, 1] = 200
    before = frame.copy()
    with PreviewVideoWriter(tmp_path / "odd.mkv", fps=10) as writer:
        writer.write(frame)
        writer.write(frame)
    np.testing.assert_array_equal(frame, before)  # padding works on a copy
    source = open_frames(tmp_path / "odd.mkv")
    assert source.size == (64, 48) and source.count == 2
    decoded = list(source)[0].read().astype(int)
    assert abs(decoded[-1, -1, 1] - 200) < 10  # the padding repeats the edge, no black seam


def test_preview_writer_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="extension '.gif'"):
        PreviewVideoWriter(tmp_path / "x.gif", fps=24)
    with pytest.raises(ValueError, match="codec libx264 does not go in a .webm"):
        PreviewVideoWriter(tmp_path / "x.webm", fps=24, codec="libx264")
    with pytest.raises(ValueError, match="fps"):
        PreviewVideoWriter(tmp_path / "x.mp4", fps=0)
    with PreviewVideoWriter(tmp_path / "x.mp4", fps=24) as writer:
        with pytest.raises(ValueError, match="uint8"):
            writer.write(np.zeros((8, 8, 3), np.float32))
        writer.write(np.zeros((8, 8, 3), np.uint8))
    assert (tmp_path / "x.mp4").is_file()


def test_ffmpeg_failure_is_an_image_write_error(tmp_path):
    target = tmp_path / "bad.mp4"
    with pytest.raises(ImageWriteError, match=str(target)):
        with PreviewVideoWriter(target, fps=24, extra_args=["-no-such-option", "1"]) as writer:
            for frame in noise_frames(3):
                writer.write(frame)
    assert list(tmp_path.iterdir()) == []


# -- streaming temporal stability ---------------------------------------------------------------
def same_median_sequence(n: int = 6):
    """Outputs and LDR inputs whose frames are permutations of one frame: every frame has the
    sequence's median, so the streaming floor equals the whole-sequence floor. A tenth of the
    pixels lie below the floor, so the floor matters."""
    rng = np.random.default_rng(5)
    base = rng.uniform(0.05, 8.0, (32, 40, 3)).astype(np.float32)
    base[:4] = 1e-6
    flat = base.reshape(-1, 3)
    outputs = np.stack([flat[rng.permutation(len(flat))].reshape(base.shape) for _ in range(n)])
    inputs = (np.clip(outputs / 8.0, 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8)
    return outputs, inputs


def test_streaming_temporal_stability_equals_the_batch_measure():
    outputs, inputs = same_median_sequence()
    acc = metrics.TemporalStabilityAccumulator()
    for out, inp in zip(outputs, inputs):
        acc.add(out, inp)
    streamed, batch = acc.result(), metrics.temporal_stability(outputs, inputs)
    assert streamed.output_change > 0.5 and streamed.comparison_change > 0.5
    for name in ("output_change", "comparison_change", "ratio"):
        assert getattr(streamed, name) == pytest.approx(getattr(batch, name), abs=1e-6)


def test_streaming_temporal_stability_floor_comes_from_the_first_frame():
    dark = np.full((8, 8, 3), 1e-4, np.float32)
    bright = np.full((8, 8, 3), 1.0, np.float32)
    acc = metrics.TemporalStabilityAccumulator()
    acc.add(bright, bright)
    acc.add(dark, bright)  # floored at 1e-3 x the first frame's median: 10 stops, not 13.3
    assert acc.result().output_change == pytest.approx(-np.log2(1e-3), rel=1e-5)
    assert acc.result().comparison_change == 0 and acc.result().ratio == float("inf")


def test_streaming_temporal_stability_errors():
    acc = metrics.TemporalStabilityAccumulator()
    with pytest.raises(ValueError, match="at least 2 frames, got 0"):
        acc.result()
    acc.add(np.ones((4, 4, 3), np.float32), np.ones((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="at least 2 frames, got 1"):
        acc.result()
    with pytest.raises(ValueError, match="differs from the previous"):
        acc.add(np.ones((4, 4, 3), np.float32), np.ones((5, 4, 3), np.uint8))
    acc.add(np.ones((4, 4, 3), np.float32), np.ones((4, 4, 3), np.uint8))  # still consistent
    assert acc.result().output_change == 0 and acc.result().ratio == 1.0
