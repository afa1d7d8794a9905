"""Training data: scenes decoded once and kept in memory, deterministic batches, prefetching.

A batch is a pure function of (seed, stream, step): resuming at step s sees the same data as an
uninterrupted run, and the background thread that prepares the next batch while the network
trains on the current one changes nothing but the speed.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .camera import CameraSettings, capture, is_panorama, pyramid, random_view

MODES = ("hdr", "ldr", "auto")
PANORAMA_MODES = ("auto", "always", "never")
TRAIN_STREAM, VAL_STREAM, PREVIEW_STREAM = 0, 1, 2


class TrainingDataError(ValueError):
    """A data folder or file that cannot be trained on; the message names it and says why."""


@dataclass
class Scene:
    """One linear scene and its box-filtered pyramid (level 0 is the full image)."""

    name: str
    levels: list[np.ndarray]
    panorama: bool

    @property
    def shape(self) -> tuple[int, int]:
        return self.levels[0].shape[:2]


def sanitize_linear(image: np.ndarray, source: str) -> np.ndarray:
    """Any HDR array -> finite, non-negative float32 (H, W, 3); a new array."""
    a = np.asarray(image, np.float32)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    elif a.ndim == 3 and a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    elif a.ndim == 3 and a.shape[-1] >= 3:
        a = a[..., :3]
    else:
        raise TrainingDataError(f"{source}: cannot train on an image of shape {a.shape}")
    finite = np.isfinite(a)
    top = float(a[finite].max()) if finite.any() else 0.0
    a = np.where(np.isposinf(a), top, np.where(finite, a, 0.0))
    a = np.maximum(a, 0.0).astype(np.float32)
    if not (a.max(axis=-1) > 0).any():
        raise TrainingDataError(f"{source}: the image is black (no positive pixel)")
    return a


def scene_from_array(
    image: np.ndarray, name: str, *, crop: int, panorama: str = "auto", max_side: int = 2048
) -> Scene:
    """A linear image -> a Scene. Images larger than `max_side` are reduced by 2x steps."""
    if panorama not in PANORAMA_MODES:
        raise ValueError(f"unknown panorama mode {panorama!r}; one of {', '.join(PANORAMA_MODES)}")
    linear = sanitize_linear(image, name)
    levels = pyramid(linear, min_side=crop // 2)
    while max(levels[0].shape[:2]) > max_side and len(levels) > 1:
        levels = levels[1:]
    pano = is_panorama(linear.shape) if panorama == "auto" else panorama == "always"
    if not pano and min(levels[0].shape[:2]) < 32:
        raise TrainingDataError(
            f"{name}: {levels[0].shape[1]}x{levels[0].shape[0]} is too small to crop from"
        )
    return Scene(name, levels, pano)


def image_files(folder: str | os.PathLike, mode: str) -> list[Path]:
    """The training images of a folder (or one file), sorted; HDR, LDR or both by `mode`."""
    from ..io import HDR_EXTENSIONS, LDR_EXTENSIONS, ImageReadError, list_images

    if mode not in MODES:
        raise ValueError(f"unknown data mode {mode!r}; one of {', '.join(MODES)}")
    path = Path(folder).expanduser()
    if not path.exists():
        raise TrainingDataError(f"{path}: no such file or folder")
    try:
        files = list_images(path)
    except ImageReadError as err:
        raise TrainingDataError(str(err)) from err
    hdr = [f for f in files if f.suffix.lower() in HDR_EXTENSIONS]
    ldr = [f for f in files if f.suffix.lower() in LDR_EXTENSIONS]
    if mode == "auto":
        mode = "hdr" if hdr else "ldr"
    chosen = hdr if mode == "hdr" else ldr
    if not chosen:
        kind = "HDR (.hdr, .exr)" if mode == "hdr" else "LDR"
        raise TrainingDataError(f"{path}: no {kind} images found")
    return chosen


def read_linear(path: Path, ldr_linearize: str) -> np.ndarray:
    """An HDR file as it is; an LDR photo linearised by the inverse camera curve."""
    from ..io import HDR_EXTENSIONS, read_image
    from ..reconstruct import as_unit_rgb, linearize_pixels

    image = read_image(path)
    if path.suffix.lower() in HDR_EXTENSIONS:
        return image
    unit, _, _ = as_unit_rgb(image)
    return linearize_pixels(unit, ldr_linearize)


def load_scenes(
    folder: str | os.PathLike,
    *,
    crop: int,
    mode: str = "auto",
    panorama: str = "auto",
    ldr_linearize: str = "gamma2.2",
    max_side: int = 2048,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[Scene]:
    """Decode every training image of a folder once (float32, in memory)."""
    files = image_files(folder, mode)
    scenes = []
    for i, f in enumerate(files):
        if progress:
            progress(i, len(files), f.name)
        try:
            linear = read_linear(f, ldr_linearize)
        except ValueError as err:  # ImageReadError names the file and the problem
            raise TrainingDataError(str(err)) from err
        scenes.append(
            scene_from_array(linear, str(f), crop=crop, panorama=panorama, max_side=max_side)
        )
    return scenes


class SampleSource:
    """Draws camera samples from scenes; `batch(step)` is deterministic for (seed, stream)."""

    def __init__(
        self,
        scenes: list[Scene],
        settings: CameraSettings,
        seed: int = 0,
        stream: int = TRAIN_STREAM,
    ):
        if not scenes:
            raise TrainingDataError("no scenes to sample from")
        self.scenes = scenes
        self.settings = settings
        self.seed = int(seed)
        self.stream = int(stream)

    def rng(self, step: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.stream, int(step)])

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One (x, y) pair from a random scene; views with no usable light are redrawn."""
        for _ in range(8):
            scene = self.scenes[int(rng.integers(len(self.scenes)))]
            view = random_view(scene.levels, scene.panorama, self.settings, rng)
            if view.max() > 0:
                break
        return capture(view, self.settings, rng)

    def batch(self, step: int, batch_size: int) -> dict[str, np.ndarray]:
        rng = self.rng(step)
        pairs = [self.sample(rng) for _ in range(batch_size)]
        return {"x": np.stack([p[0] for p in pairs]), "y": np.stack([p[1] for p in pairs])}

    def fixed_batches(self, n_samples: int, batch_size: int) -> list[dict[str, np.ndarray]]:
        """The same list every call (validation, previews)."""
        out = []
        for i, start in enumerate(range(0, n_samples, batch_size)):
            out.append(self.batch(i, min(batch_size, n_samples - start)))
        return out


class Prefetcher:
    """Prepares batches `make(step)` for the steps ahead in a background thread."""

    def __init__(self, make: Callable[[int], dict], start: int, stop: int, depth: int = 3):
        self._make = make
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._work, args=(start, stop), daemon=True, name="hdrcnn-prefetch"
        )
        self._thread.start()

    def _work(self, start: int, stop: int) -> None:
        for step in range(start, stop):
            if self._stop.is_set():
                return
            try:
                item = (step, self._make(step), None)
            except BaseException as err:  # handed to the consumer, which re-raises it
                item = (step, None, err)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return

    def __iter__(self) -> Iterator[tuple[int, dict]]:
        while True:
            if not self._thread.is_alive() and self._queue.empty():
                return
            try:
                step, batch, err = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if err is not None:
                raise err
            yield step, batch

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
