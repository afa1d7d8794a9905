"""The evaluation's tables: per_image.csv and summary.csv (columns, means, 95 % confidence
intervals, the worst loss to the baseline), written atomically, and the text tables and
settings summary `hdrcnn evaluate` prints."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from .. import metrics
from .protocol import BASELINE, EvaluationResult

CI_DESCRIPTION = (
    "mean +- t(0.975, n-1) * s / sqrt(n), s the sample standard deviation "
    "(ddof=1) over the n images with a finite value; empty when n < 2"
)


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
    from ..io import atomic_output

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([format_value(r.get(c)) for c in columns])
    with atomic_output(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")


def write_bytes(path: Path, data: bytes) -> None:
    from ..io import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


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
