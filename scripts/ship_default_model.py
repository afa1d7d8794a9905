"""Install a trained weight file as an embedded model (default or a variant), with its
provenance.

    python scripts/ship_default_model.py runs/default-w0125/weights.npz --run-dir runs/default-w0125
    python scripts/ship_default_model.py runs/compr/weights.npz \
        --run-dir runs/compr --name default-compr

Copies the training curve (train_log.csv) to docs/<name>-model/, so the shipped model's history
stays in the repository while the run folder stays out of it.
"""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import subprocess
from pathlib import Path

from napari_hdrcnn.weights import (
    BLENDS,
    EMBEDDED_DESCRIPTIONS,
    embedded_weights_path,
    load_weights,
    sha256_of,
    write_weights,
)

REPO = Path(__file__).resolve().parents[1]
RETRAIN = {"default": "bash scripts/train_default_model.sh"}
VARIANT_RETRAIN = "bash scripts/train_variants.sh"


def plot_curves(log_csv: Path, out_png: Path) -> None:
    """Training and validation loss against step, log scale, drawn with Pillow (no matplotlib)."""
    from PIL import Image, ImageDraw

    rows = list(csv.DictReader(open(log_csv)))
    series = {
        key: [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        for key in ("loss", "val_loss")
    }
    points = [p for s in series.values() for p in s if p[1] > 0]
    if not points:
        return
    w, h, m = 640, 360, 50
    x_max = max(p[0] for p in points)
    y_lo, y_hi = (math.log10(min(p[1] for p in points)), math.log10(max(p[1] for p in points)))
    y_hi += 1e-9
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    d.rectangle([m, 10, w - 10, h - m], outline="black")

    def xy(step, value):
        return (
            m + (w - 10 - m) * step / x_max,
            h - m - (h - m - 10) * (math.log10(value) - y_lo) / (y_hi - y_lo),
        )

    for key, colour in (("loss", (70, 110, 200)), ("val_loss", (220, 90, 40))):
        pts = [xy(s, v) for s, v in series[key] if v > 0]
        if len(pts) > 1:
            d.line(pts, fill=colour, width=2)
        for x, y in pts if key == "val_loss" else []:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    d.text((m, h - m + 8), "0", fill="black")
    d.text((w - 60, h - m + 8), f"step {x_max}", fill="black")
    d.text((5, 10), f"{10**y_hi:.3g}", fill="black")
    d.text((5, h - m - 12), f"{10**y_lo:.3g}", fill="black")
    d.text(
        (m + 10, h - 22), "training loss (blue), validation loss (orange), log scale", fill="black"
    )
    img.save(out_png)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("weights", help="the trained weight file")
    parser.add_argument("--run-dir", help="the training run folder (for its log)")
    parser.add_argument("--commit", help="the commit the training code came from")
    parser.add_argument(
        "--name",
        default="default",
        choices=list(EMBEDDED_DESCRIPTIONS),
        help="which embedded model to replace",
    )
    parser.add_argument(
        "--blend",
        choices=BLENDS,
        help="the blend the shipped file asks for (default: the file's own)",
    )
    args = parser.parse_args()

    w = load_weights(args.weights)
    if args.blend:
        w.blend = args.blend
    meta = dict(w.metadata)
    meta.pop("blend", None)  # the Weights attribute is written
    meta.pop("sha256", None)
    commit = (
        args.commit
        or meta.get("git_commit")
        or subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    )
    data = str(meta.get("data", ""))
    if "shared/data/" in data:  # a path on the training machine -> the repository-relative one
        data = "../shared/data/" + data.split("shared/data/", 1)[1]
    if args.run_dir and (Path(args.run_dir) / "run.json").is_file():
        import json

        init = json.loads((Path(args.run_dir) / "run.json").read_text()).get("init")
        if init:  # a fine-tune: record what it started from, by name where it is a shipped file
            stem = Path(init).stem
            meta["init"] = stem if stem in EMBEDDED_DESCRIPTIONS else init
            if stem in EMBEDDED_DESCRIPTIONS:  # names outlive files: pin the one it started from
                meta["init_sha256"] = sha256_of(embedded_weights_path(stem))
    w.metadata = {}
    target = embedded_weights_path(args.name)
    write_weights(
        w,
        target,
        **{
            **meta,
            "name": args.name,
            "data": data,
            "git_commit": commit,
            "retrain": RETRAIN.get(args.name, VARIANT_RETRAIN),
        },
    )
    print(f"wrote {target} ({target.stat().st_size} bytes)")
    if args.run_dir:
        dest = REPO / "docs" / f"{args.name}-model"
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("train_log.csv", "run.json"):
            src = Path(args.run_dir) / name
            if src.is_file():
                shutil.copyfile(src, dest / name)
                print(f"copied {src} -> {dest / name}")
        if (dest / "train_log.csv").is_file():
            plot_curves(dest / "train_log.csv", dest / "curves.png")
            print(f"wrote {dest / 'curves.png'}")


if __name__ == "__main__":
    main()
