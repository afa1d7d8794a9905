"""The project's documents: every document the code, tests, scripts and README point at is in
the repository, and docs/evaluation.md describes the protocol as implemented."""

from __future__ import annotations

import re
from pathlib import Path

from napari_hdrcnn import evaluate, metrics

ROOT = Path(__file__).resolve().parents[1]
# notes of the people who built the project, not part of it (spelled apart: this file is scanned)
OUTSIDE_DOCUMENTS = ("napari" + "-notes", "shared" + "/docs")
DOC_REFERENCE = re.compile(r"(?<![\w/.-])((?:\.\./)?[\w./-]*[\w-]+\.md)\b")


def project_texts() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "pyproject.toml"]
    for folder in ("src", "tests", "scripts", "benchmarks", "docs", ".ci"):
        files += [
            p
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and p.suffix in (".py", ".sh", ".md", ".toml", ".yaml", "")
        ]
    return files


def test_every_referenced_document_is_in_the_repository():
    missing = []
    for path in project_texts():
        text = path.read_text(errors="replace")
        for outside in OUTSIDE_DOCUMENTS:
            assert outside not in text, f"{path.relative_to(ROOT)} points at {outside}"
        for ref in DOC_REFERENCE.findall(text):
            if ref.startswith("http") or "*" in ref:
                continue
            candidates = [path.parent / ref, ROOT / ref, ROOT / "docs" / ref]
            if "/" not in ref:  # a bare name, where the text has said which folder
                candidates += list((ROOT / "docs").rglob(ref))
            if not any(c.resolve().is_file() for c in candidates):
                missing.append(f"{path.relative_to(ROOT)}: {ref}")
    assert not missing, missing


def test_evaluation_doc_names_every_csv_column_and_the_protocol_constants():
    doc = (ROOT / "docs" / "evaluation.md").read_text()
    for column in evaluate.PER_IMAGE_COLUMNS:
        assert f"`{column}`" in doc, column
    generic = {f"`{m}`" for m in metrics.ALL_METRIC_NAMES} | {"`<metric>`", "`<metric>_ci95`"}
    for column in evaluate.summary_columns():
        if column.endswith("_ci95"):
            continue  # described once, as <metric>_ci95
        assert f"`{column}`" in doc or column in metrics.ALL_METRIC_NAMES, column
    assert all(g in doc for g in generic)
    for value in metrics.PU21_PARAMS:
        assert f"{value:.10g}" in doc, value
    for constant in (
        f"{metrics.UNCLIPPED_MAX_CODE} of 255",
        f"{metrics.CLIPPED_MIN_CODE} of 255",
        f"{metrics.PEAK_LUMINANCE:g} / max(Y_ref)",
        f"above {metrics.GAIN_MIN_LUMINANCE:.0e}".replace("e-06", "e-6"),
        f"[{metrics.L_MIN:g}, {metrics.L_MAX:g}]",
        f"sigma={metrics.SSIM_SIGMA:g}",
        f"lambda {metrics.CRF_CHROMA_LAMBDA:g}",
        f"`10 log10({metrics.PU21_PSNR_PEAK:g}²",
        f"`x ** {metrics.LDR_GAMMA:g}`",
    ):
        assert constant in doc, constant
