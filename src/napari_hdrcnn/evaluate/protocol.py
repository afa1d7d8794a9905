"""The SI-HDR evaluation protocol (docs/evaluation.md): its camera (the 8-bit test inputs),
the references, the methods (the `ldr_linear` baseline and the weight files), and the
configuration, test cases and results of a run (`run.run_evaluation` carries it out)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import metrics
from ..io.ldr import jpeg_round_trip
from ..metrics import ldr_linear
from ..options import ReconstructOptions
from ..weights import WEIGHT_NAMES

CAMERA_GAMMA = metrics.LDR_GAMMA
DEFAULT_CLIPS = (95.0,)
BASELINE = "ldr_linear"

Log = Callable[[str], None]


class EvaluationError(ValueError):
    """A problem with the evaluation's inputs; the message names the file and the problem."""


# -- test inputs ---------------------------------------------------------------------------------
def camera_exposure(hdr: np.ndarray, clip: float) -> float:
    """Exposure e such that the `clip`-th percentile of max_c(e * H) is 1."""
    level = float(np.percentile(hdr.max(axis=-1), clip))
    if not level > 0:
        raise EvaluationError(
            f"the {clip:g}th percentile of the image is 0: too dark for clip level {clip:g}"
        )
    return 1.0 / level


def camera_ldr(hdr: np.ndarray, clip: float) -> tuple[np.ndarray, float]:
    """The protocol's camera: `clip(e * H, 0, 1) ** (1 / 2.2)`, rounded to 8 bits.

    Returns (uint8 (H, W, 3), exposure e).
    """
    e = camera_exposure(hdr, clip)
    return expose_ldr(hdr, e), e


def expose_ldr(hdr: np.ndarray, exposure: float) -> np.ndarray:
    """The protocol's camera at a given exposure: `clip(e * H, 0, 1) ** (1 / 2.2)`, 8 bits."""
    x = np.clip(hdr.astype(np.float64) * exposure, 0.0, 1.0) ** (1.0 / CAMERA_GAMMA)
    return np.floor(x * 255.0 + 0.5).astype(np.uint8)


# -- references ----------------------------------------------------------------------------------
def as_reference(pixels: np.ndarray, path: Path, log: Log | None = None) -> np.ndarray:
    """A read HDR image -> float32 (H, W, 3), non-finite and negative values set to 0."""
    a = np.asarray(pixels)
    if a.dtype.kind != "f":
        raise EvaluationError(
            f"{path}: a reference must be a linear HDR image (.exr, .hdr), got {a.dtype} pixels"
        )
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    elif a.ndim == 3 and a.shape[-1] in (1, 2):
        a = np.repeat(a[..., :1], 3, axis=-1)
    elif a.ndim != 3 or a.shape[-1] < 3:
        raise EvaluationError(f"{path}: unsupported reference shape {a.shape}")
    a = a[..., :3].astype(np.float32)
    bad = ~np.isfinite(a) | (a < 0)
    if bad.any():
        if log:
            log(f"note: {path.name}: {int(bad.sum())} NaN/Inf/negative values set to 0")
        a = np.where(bad, np.float32(0.0), a)
    if not float(a.max()) > 0:
        raise EvaluationError(f"{path}: the reference image is black")
    return a


def downscale(hdr: np.ndarray, max_side: int) -> np.ndarray:
    """Box-filter the linear image so its longer side is at most `max_side` (deterministic)."""
    from PIL import Image

    h, w = hdr.shape[:2]
    f = max_side / max(h, w)
    if f >= 1:
        return hdr
    size = (max(1, int(round(w * f))), max(1, int(round(h * f))))
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(hdr[..., c]), mode="F").resize(size, Image.BOX)
        )
        for c in range(3)
    ]
    return np.maximum(np.stack(planes, axis=-1), 0.0).astype(np.float32)


def safe_name(stem: str) -> str:
    """A file-name-safe version of an image stem: letters, digits, '.', '_', '-' only."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")
    return name or "image"


def unique_names(paths: list[Path]) -> list[str]:
    """Sanitised stems, made unique (a.exr and a.hdr -> a, a_hdr)."""
    names, seen = [], set()
    for p in paths:
        name = safe_name(p.stem)
        if name in seen:
            name = safe_name(f"{p.stem}_{p.suffix.lstrip('.')}")
        base, k = name, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        names.append(name)
    return names


def read_given_ldr(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A given LDR test input as uint8/uint16 RGB of the reference's size."""
    from ..io import read_image

    a = np.asarray(read_image(path))
    if a.dtype not in (np.uint8, np.uint16):
        raise EvaluationError(f"{path}: an LDR input must be 8 or 16 bit, got {a.dtype}")
    if a.ndim == 2:
        a = a[..., None]
    a = np.repeat(a[..., :1], 3, axis=-1) if a.shape[-1] < 3 else a[..., :3]
    if a.shape[:2] != tuple(shape):
        raise EvaluationError(
            f"{path}: size {a.shape[1]}x{a.shape[0]} differs from the "
            f"reference's {shape[1]}x{shape[0]}"
        )
    return np.ascontiguousarray(a)


def find_given_ldr(ldr_dir: Path, stem: str) -> Path:
    from ..io import LDR_EXTENSIONS

    found = sorted(
        p
        for p in ldr_dir.iterdir()
        if p.is_file() and p.stem == stem and p.suffix.lower() in LDR_EXTENSIONS
    )
    if not found:
        raise EvaluationError(f"{ldr_dir}: no LDR input named {stem}.* for reference {stem}")
    return found[0]


# -- methods -------------------------------------------------------------------------------------
@dataclass
class Method:
    """One row group of the tables: the baseline (reconstructor None) or a weight file."""

    label: str
    source: str = ""
    reconstructor: object = None
    info: dict = field(default_factory=dict)

    def predict(self, ldr: np.ndarray) -> np.ndarray:
        """The method's HDR for `ldr`, with the options its reconstructor was made with."""
        if self.reconstructor is None:
            return ldr_linear(ldr)
        return self.reconstructor.run(ldr).hdr


def default_label(param: str) -> str:
    return param if param in WEIGHT_NAMES else safe_name(Path(param).stem)


def method_labels(params: list[str], labels: list[str] | None) -> list[str]:
    """Labels for the weight files: given ones, else the weight name or file stem; unique."""
    if labels and len(labels) != len(params):
        raise EvaluationError(f"{len(labels)} label(s) for {len(params)} weight file(s)")
    out: list[str] = []
    for i, p in enumerate(params):
        label = labels[i] if labels else default_label(p)
        base, k = label, 2
        while label in out or label == BASELINE:
            if labels and label == BASELINE:
                raise EvaluationError(f"the label {BASELINE!r} is reserved for the baseline")
            label, k = f"{base}-{k}", k + 1
        out.append(label)
    return out


def load_methods(
    params: list[str],
    labels: list[str] | None,
    options: ReconstructOptions | None = None,
) -> list[Method]:
    """The baseline and one Method per weight file (loaded and checked now, built lazily)."""
    from ..reconstruct import Reconstructor

    options = ReconstructOptions.of(options)
    methods = [Method(BASELINE, info={"label": BASELINE, "description": "x ** 2.2 of the input"})]
    for label, p in zip(method_labels(params, labels), params):
        rec = Reconstructor(p, options)
        w = rec.weights
        methods.append(
            Method(
                label,
                str(p),
                rec,
                {
                    "label": label,
                    "params": str(p),
                    "file": w.source,
                    "sha256": w.metadata.get("sha256", ""),
                    "width_factor": w.width_factor,
                    "linearize": options.linearize or w.linearize,
                    "blend": options.blend or w.blend,
                    "format": w.metadata.get("format", ""),
                },
            )
        )
    return methods


# -- configuration and results ------------------------------------------------------------------
@dataclass
class EvaluationConfig:
    reference: Path
    out: Path
    params: list[str] = field(default_factory=lambda: ["default"])
    labels: list[str] | None = None
    clips: tuple[float, ...] = DEFAULT_CLIPS
    jpeg: int | None = None
    ldr_dir: Path | None = None
    max_side: int | None = None
    options: ReconstructOptions = field(default_factory=ReconstructOptions)
    figures: bool = True
    command: list[str] = field(default_factory=list)


@dataclass
class InputCase:
    name: str  # file-name-safe, unique per reference and clip level
    image: str
    clip: str  # "95", or "given"
    ldr: np.ndarray
    exposure: float | None  # the camera's; None for given inputs
    encoded: bytes | None = None  # the JPEG file the methods saw, if any


@dataclass
class EvaluationResult:
    per_image: list[dict]
    summary: list[dict]
    settings: dict
    figures: list[Path]


# -- test cases ----------------------------------------------------------------------------------
def list_references(path: Path) -> list[Path]:
    from ..io import is_hdr_file, list_images

    found = [p for p in list_images(path) if is_hdr_file(p)]
    if not found:
        raise EvaluationError(f"{path}: no HDR reference images (.exr, .hdr)")
    return found


def input_cases(
    name: str, image: str, reference: np.ndarray, config: EvaluationConfig, given: Path | None
) -> list[InputCase]:
    if given is not None:
        ldr = read_given_ldr(given, reference.shape[:2])
        return [InputCase(name, image, "given", ldr, None)]
    out = []
    for clip in config.clips:
        ldr, e = camera_ldr(reference, clip)
        encoded = None
        if config.jpeg:
            ldr, encoded = jpeg_round_trip(ldr, config.jpeg)
        tag = f"{name}_clip{clip:g}" + (f"_q{config.jpeg}" if config.jpeg else "")
        out.append(InputCase(safe_name(tag), image, f"{clip:g}", ldr, e, encoded))
    return out
