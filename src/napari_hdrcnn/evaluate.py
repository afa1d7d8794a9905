"""The SI-HDR evaluation protocol (docs/evaluation.md): test inputs, runs, tables and figures.

For every reference HDR image and clip level, the protocol's camera makes the 8-bit test input
(`camera_ldr`, optionally through JPEG), every method reconstructs it (the `ldr_linear`
baseline always, then each weight file), `metrics.score` scores each against the reference,
and the results are written to `per_image.csv`, `summary.csv` (mean and 95 % confidence
interval per method and clip level), `settings.json` and one comparison figure per test input.
Nothing random is involved, so a run is reproducible to the printed digits.
"""

from __future__ import annotations

import csv
import io
import json
import math
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import metrics
from .colour import REC709_LUMINANCE
from .io.ldr import JPEG_SUBSAMPLING, jpeg_round_trip
from .metrics import ldr_linear  # noqa: F401  (the baseline; part of this module's API)
from .options import ReconstructOptions
from .weights import WEIGHT_NAMES, sha256_of

CAMERA_GAMMA = metrics.LDR_GAMMA
DEFAULT_CLIPS = (95.0,)
BASELINE = "ldr_linear"
FIGURE_STOPS = -2.0  # figure exposure relative to the test camera's
FIGURE_PANEL_WIDTH = 320
ERROR_MAP_MAX_PU = 64.0
CI_DESCRIPTION = (
    "mean +- t(0.975, n-1) * s / sqrt(n), s the sample standard deviation "
    "(ddof=1) over the n images with a finite value; empty when n < 2"
)

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
    from .io import read_image

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
    from .io import LDR_EXTENSIONS

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
    from .reconstruct import Reconstructor

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


PER_IMAGE_COLUMNS = (
    "image",
    "clip",
    "jpeg",
    "method",
    "gain",
    "clipped_fraction",
    *metrics.ALL_METRIC_NAMES,
)


def summary_columns() -> tuple[str, ...]:
    cols = ["method", "clip", "jpeg", "n", "n_clipped"]
    for m in metrics.ALL_METRIC_NAMES:
        cols += [m, f"{m}_ci95"]
    return (*cols, "worst_pu21_psnr_vs_ldr_linear")


def confidence_interval(values) -> tuple[float, float, int]:
    """(mean, half-width of the 95 % t interval, n) over the finite values; see CI_DESCRIPTION.

    An infinite value (an exact reconstruction) makes the mean infinite and the interval NaN.
    """
    v = np.asarray([x for x in values if not math.isnan(x)], np.float64)
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), 0
    if not np.all(np.isfinite(v)):
        return float(np.mean(v)), float("nan"), n
    if n < 2:
        return float(v[0]), float("nan"), n
    from scipy.stats import t

    half = float(t.ppf(0.975, n - 1) * np.std(v, ddof=1) / math.sqrt(n))
    return float(np.mean(v)), half, n


def summarise(rows: list[dict], method_order: list[str]) -> list[dict]:
    """One row per (method, clip): mean and CI of every metric, and the worst per-image
    PU21-PSNR difference to `ldr_linear` (negative: the method lost to the baseline)."""
    baseline = {(r["image"], r["clip"]): r["pu21_psnr"] for r in rows if r["method"] == BASELINE}
    clips = list(dict.fromkeys(r["clip"] for r in rows))
    out = []
    for clip in clips:
        for method in method_order:
            sel = [r for r in rows if r["method"] == method and r["clip"] == clip]
            if not sel:
                continue
            row = {
                "method": method,
                "clip": clip,
                "jpeg": sel[0]["jpeg"],
                "n": len(sel),
                "n_clipped": sum(1 for r in sel if not math.isnan(r["pu21_psnr_clipped"])),
            }
            for m in metrics.ALL_METRIC_NAMES:
                row[m], row[f"{m}_ci95"], _ = confidence_interval(r[m] for r in sel)
            diffs = [
                r["pu21_psnr"] - baseline[(r["image"], clip)]
                for r in sel
                if (r["image"], clip) in baseline
            ]
            diffs = [d for d in diffs if not math.isnan(d)]
            row["worst_pu21_psnr_vs_ldr_linear"] = min(diffs) if diffs else float("nan")
            out.append(row)
    return out


# -- files ---------------------------------------------------------------------------------------
def format_value(v) -> str:
    """CSV cell: floats with 6 decimals (more than printed), 'inf'/'nan' spelled out."""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.6f}"
    return "" if v is None else str(v)


def write_csv(path: Path, rows: list[dict], columns) -> None:
    from .io import atomic_output

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([format_value(r.get(c)) for c in columns])
    with atomic_output(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")


def write_bytes(path: Path, data: bytes) -> None:
    from .io import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in (
        "napari-hdrcnn",
        "numpy",
        "scipy",
        "scikit-image",
        "pillow",
        "tensorflow-cpu",
        "tensorflow",
        "openvino",
        "OpenEXR",
    ):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def protocol_settings(config: EvaluationConfig) -> dict:
    """Everything a reader needs to reproduce or compare the numbers."""
    return {
        "test_inputs": (
            "given LDR files"
            if config.ldr_dir
            else "camera: e such that the clip-th percentile of max_c(e*H) is 1; "
            "clip(e*H, 0, 1) ** (1/2.2); 8-bit rounding"
        ),
        "clip_levels": None if config.ldr_dir else [float(c) for c in config.clips],
        "jpeg_quality": config.jpeg,
        "jpeg_chroma_subsampling": JPEG_SUBSAMPLING if config.jpeg else None,
        "max_side": config.max_side,
        "alignment": (
            "log g = mean(log Y_ref - log Y_pred) over pixels with LDR max channel "
            f"<= {metrics.UNCLIPPED_MAX_CODE}/255 and both luminances > "
            f"{metrics.GAIN_MIN_LUMINANCE:g}; then both images * "
            f"{metrics.PEAK_LUMINANCE:g} / max(Y_ref), clamped to "
            f"[{metrics.L_MIN:g}, {metrics.L_MAX:g}] cd/m^2"
        ),
        "luminance": "Y = {} R + {} G + {} B".format(*REC709_LUMINANCE),
        "pu21": {"variant": "banding_glare", "params": list(metrics.PU21_PARAMS)},
        "pu21_psnr_peak": metrics.PU21_PSNR_PEAK,
        "clipped_region": f"LDR max channel >= {metrics.CLIPPED_MIN_CODE}/255",
        "pu21_ssim": (
            "skimage structural_similarity on PU21 luminance, data_range=256, "
            "gaussian_weights=True, sigma=1.5, use_sample_covariance=False"
        ),
        "log_rmse_clipped": "RMSE of log2 luminance (stops) over the clipped region",
        "crf_correction": (
            "SI-HDR: cubic on PQ luminance (least squares), ridge-regularised "
            f"cubic on u'v' (lambda {metrics.CRF_CHROMA_LAMBDA}), prediction "
            "fitted to the reference, then scored (+CRF columns)"
        ),
        "confidence_interval": CI_DESCRIPTION,
        "baseline": f"{BASELINE}: x ** {CAMERA_GAMMA:g} of the input",
        "linearize_override": config.options.linearize,
        "blend_override": config.options.blend,
        "figures": {
            "exposure_stops_vs_camera": FIGURE_STOPS,
            "display_gamma": CAMERA_GAMMA,
            "error_map": f"|PU21(Y_pred) - PU21(Y_ref)|, 0 to {ERROR_MAP_MAX_PU:g}",
        },
    }


# -- figures -------------------------------------------------------------------------------------
_RAMP = np.array(
    [[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]], np.float32
)  # dark to light, magma-like


def colour_ramp(t: np.ndarray) -> np.ndarray:
    """Map [0, 1] to a dark-to-light colour ramp, uint8 (..., 3)."""
    t = np.clip(np.nan_to_num(t), 0.0, 1.0) * (len(_RAMP) - 1)
    i = np.minimum(t.astype(np.int32), len(_RAMP) - 2)
    f = (t - i)[..., None]
    return (_RAMP[i] * (1 - f) + _RAMP[i + 1] * f + 0.5).astype(np.uint8)


def display(image: np.ndarray, scale: float) -> np.ndarray:
    """Linear image -> 8-bit display: clip(scale * x, 0, 1) ** (1 / 2.2)."""
    with np.errstate(over="ignore"):
        x = np.clip(np.asarray(image, np.float32) * np.float32(scale), 0.0, 1.0)
    return (np.power(x, np.float32(1 / CAMERA_GAMMA)) * 255.0 + 0.5).astype(np.uint8)


def _panel(pixels: np.ndarray, title: str, width: int):
    from PIL import Image, ImageDraw

    im = Image.fromarray(pixels)
    if im.width > width:
        im = im.resize((width, max(1, round(im.height * width / im.width))), Image.BOX)
    header = 14
    out = Image.new("RGB", (im.width, im.height + header), (255, 255, 255))
    out.paste(im, (0, header))
    ImageDraw.Draw(out).text((2, 1), title, fill=(0, 0, 0))
    return out


def comparison_figure(
    test: InputCase,
    reference: np.ndarray,
    scorer: metrics.ScoringReference,
    rows: list[tuple[str, np.ndarray, float]],
    display_scale: float,
) -> np.ndarray:
    """One row per method: input | reconstruction | reference | error map, all at one exposure.

    rows: (label, prediction, alignment gain); images are shown in the reference's scale times
    `display_scale`; the error map is |PU21 luminance difference| after alignment.
    """
    from PIL import Image

    gain_in = metrics.alignment_gain(ldr_linear(test.ldr), reference, test.ldr)
    shown_in = display(ldr_linear(test.ldr), display_scale * gain_in)
    shown_ref = display(reference, display_scale)
    panels = []
    for label, pred, gain in rows:
        pred_y = np.clip(
            metrics.luminance(metrics.to_absolute(pred, gain * scorer.scale)),
            metrics.L_MIN,
            metrics.L_MAX,
        )
        err = np.abs(metrics.pu21_encode(pred_y) - scorer.pu_y) / ERROR_MAP_MAX_PU
        panels.append(
            [
                _panel(shown_in, f"input, clip {test.clip}", FIGURE_PANEL_WIDTH),
                _panel(display(pred, display_scale * gain), label, FIGURE_PANEL_WIDTH),
                _panel(shown_ref, "reference", FIGURE_PANEL_WIDTH),
                _panel(colour_ramp(err), f"|dPU21| 0-{ERROR_MAP_MAX_PU:g}", FIGURE_PANEL_WIDTH),
            ]
        )
    pw, ph, gap = panels[0][0].width, panels[0][0].height, 4
    sheet = Image.new(
        "RGB", (4 * pw + 3 * gap, len(panels) * ph + (len(panels) - 1) * gap), (255, 255, 255)
    )
    for r, row in enumerate(panels):
        for c, p in enumerate(row):
            sheet.paste(p, (c * (pw + gap), r * (ph + gap)))
    return np.asarray(sheet)


# -- the run -------------------------------------------------------------------------------------
def list_references(path: Path) -> list[Path]:
    from .io import is_hdr_file, list_images

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


def run_evaluation(config: EvaluationConfig, log: Log = print) -> EvaluationResult:
    """Run the whole protocol and write per_image.csv, summary.csv, settings.json, figures/
    and inputs/ under config.out (and nothing outside it)."""
    from .io import read_image, write_png

    for c in config.clips:
        if not 0 < c < 100:
            raise EvaluationError(f"clip level {c:g} must lie strictly between 0 and 100")
    if config.jpeg is not None and not 1 <= config.jpeg <= 100:
        raise EvaluationError(f"JPEG quality {config.jpeg} must lie in 1..100")
    if config.ldr_dir is not None and config.max_side:
        raise EvaluationError(
            "--max-side cannot be combined with given LDR inputs (their size "
            "must match the reference)"
        )
    if config.ldr_dir is not None and config.jpeg is not None:
        raise EvaluationError(
            "--jpeg applies to the inputs the protocol makes; given LDR inputs are used as they are"
        )
    ref_paths = list_references(Path(config.reference))
    names = unique_names(ref_paths)
    methods = load_methods(config.params, config.labels, config.options)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    settings = {
        "command": config.command,
        "versions": versions(),
        "protocol": protocol_settings(config),
        "methods": [m.info for m in methods],
        "references": [],
    }
    rows, figures = [], []
    for path, name in zip(ref_paths, names):
        reference = as_reference(read_image(path), path, log)
        if config.max_side:
            reference = downscale(reference, config.max_side)
        settings["references"].append(
            {
                "file": str(path),
                "name": name,
                "sha256": sha256_of(path),
                "size": [reference.shape[1], reference.shape[0]],
            }
        )
        given = find_given_ldr(Path(config.ldr_dir), path.stem) if config.ldr_dir else None
        for test in input_cases(name, path.name, reference, config, given):
            if test.encoded is not None:
                write_bytes(out / "inputs" / f"{test.name}.jpg", test.encoded)
            else:
                write_png(out / "inputs" / f"{test.name}.png", test.ldr)
            fig_rows = []
            scorer = metrics.ScoringReference(reference, test.ldr)
            for method in methods:
                t0 = time.perf_counter()
                pred = metrics.finite_prediction(method.predict(test.ldr))
                seconds = time.perf_counter() - t0
                s = scorer.score(pred)
                rows.append(
                    {
                        "image": name,
                        "clip": test.clip,
                        "jpeg": config.jpeg or "",
                        "method": method.label,
                        "gain": s.gain,
                        "clipped_fraction": s.clipped_fraction,
                        **s.metrics,
                    }
                )
                fig_rows.append((method.label, pred, s.gain))
                log(
                    f"{name} clip {test.clip}: {method.label:<12} PU21-PSNR "
                    f"{s.metrics['pu21_psnr']:6.2f} clipped {s.metrics['pu21_psnr_clipped']:6.2f}"
                    f" SSIM {s.metrics['pu21_ssim']:.4f} ({seconds:.1f} s)"
                )
            if config.figures:
                exposure = test.exposure
                if exposure is None:  # given input: the camera's exposure, as the gain finds it
                    exposure = 1.0 / metrics.alignment_gain(
                        ldr_linear(test.ldr), reference, test.ldr
                    )
                sheet = comparison_figure(
                    test, reference, scorer, fig_rows, exposure * 2.0**FIGURE_STOPS
                )
                fig = out / "figures" / f"{test.name}.png"
                write_png(fig, sheet)
                figures.append(fig)
        write_csv(out / "per_image.csv", rows, PER_IMAGE_COLUMNS)  # so far, in case of a crash

    order = [m.label for m in methods]
    summary = summarise(rows, order)
    write_csv(out / "summary.csv", summary, summary_columns())
    write_bytes(
        out / "settings.json", (json.dumps(settings, indent=2, sort_keys=False) + "\n").encode()
    )
    return EvaluationResult(rows, summary, settings, figures)


# -- printing ------------------------------------------------------------------------------------
PRINT_DIGITS = {"pu21_psnr": 2, "pu21_psnr_clipped": 2, "pu21_ssim": 4, "log_rmse_clipped": 3}
PRINT_TITLES = {
    "pu21_psnr": "PU21-PSNR",
    "pu21_psnr_clipped": "clipped PSNR",
    "pu21_ssim": "PU21-SSIM",
    "log_rmse_clipped": "log2 RMSE",
}


def _cell(mean: float, ci: float, digits: int) -> str:
    if math.isnan(mean):
        return "-"
    if math.isinf(mean):
        return "inf"
    s = f"{mean:.{digits}f}"
    return s if math.isnan(ci) else f"{s} ±{ci:.{digits}f}"


def format_summary(summary: list[dict]) -> str:
    """The summary as a fixed-digit text table: mean ±95 % CI half-width per metric, without
    and with the CRF correction."""
    blocks = []
    for suffix, title in (("", "aligned"), (metrics.CRF_SUFFIX, "aligned + CRF correction")):
        head = ["method", "clip", "n"] + [PRINT_TITLES[m] for m in metrics.METRIC_NAMES]
        body = [
            [r["method"], str(r["clip"]), str(r["n"])]
            + [
                _cell(r[m + suffix], r[f"{m + suffix}_ci95"], PRINT_DIGITS[m])
                for m in metrics.METRIC_NAMES
            ]
            for r in summary
        ]
        widths = [max(len(x) for x in col) for col in zip(head, *body)]
        lines = [f"{title}:", "  ".join(h.ljust(w) for h, w in zip(head, widths))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in body]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def format_settings(result: EvaluationResult) -> str:
    p = result.settings["protocol"]
    lines = [
        f"inputs:    {p['test_inputs']}",
        f"clip:      {p['clip_levels']}   JPEG: {p['jpeg_quality'] or 'none'}"
        f"   max side: {p['max_side'] or 'native'}",
        f"alignment: {p['alignment']}",
        f"metrics:   PU21 {p['pu21']['variant']}, PSNR peak {p['pu21_psnr_peak']:g}; "
        f"clipped region {p['clipped_region']}; +CRF: {p['crf_correction']}",
        f"CI:        {p['confidence_interval']}",
    ]
    for m in result.settings["methods"]:
        if m["label"] == BASELINE:
            continue
        lines.append(
            f"method:    {m['label']} = {m['file']} (sha256 {m['sha256'][:16]}, width "
            f"{m['width_factor']:g}, linearise {m['linearize']}, blend "
            f"{m['blend']})"
        )
    lines.append(f"images:    {len(result.settings['references'])}")
    return "\n".join(lines)
