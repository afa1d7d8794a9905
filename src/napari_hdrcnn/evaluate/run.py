"""A whole evaluation: every reference, clip level and method, scored, and the files written
(per_image.csv, summary.csv, settings.json, inputs/, figures/)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from .. import metrics
from ..colour import REC709_LUMINANCE
from ..io.ldr import JPEG_SUBSAMPLING
from ..metrics import ldr_linear
from ..weights import sha256_of
from .figures import ERROR_MAP_MAX_PU, FIGURE_STOPS, comparison_figure
from .protocol import (
    BASELINE,
    CAMERA_GAMMA,
    EvaluationConfig,
    EvaluationError,
    EvaluationResult,
    Log,
    as_reference,
    downscale,
    find_given_ldr,
    input_cases,
    list_references,
    load_methods,
    unique_names,
)
from .report import (
    CI_DESCRIPTION,
    PER_IMAGE_COLUMNS,
    summarise,
    summary_columns,
    write_bytes,
    write_csv,
)


def run_evaluation(config: EvaluationConfig, log: Log = print) -> EvaluationResult:
    """Run the whole protocol and write per_image.csv, summary.csv, settings.json, figures/
    and inputs/ under config.out (and nothing outside it)."""
    from ..io import read_image, write_png

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
