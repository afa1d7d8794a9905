"""`hdrcnn evaluate` tables -> markdown for the README and docs/evaluation.

    python scripts/summary_table.py RUN/summary.csv                 # mean ± 95 % CI per method
    python scripts/summary_table.py RUN/summary.csv RUN/per_image.csv  # ... and per scene

The per-scene table gives each method's clipped-region PU21-PSNR minus ldr_linear's (dB) at
every clip level, so a scene where a model does harm is visible at once, and counts the scenes
more than 1 dB below ldr_linear (the bar of issue "do no harm").
"""

import csv
import sys
from collections import defaultdict

COLUMNS = [
    ("pu21_psnr", "PU21-PSNR", 2),
    ("pu21_psnr_clipped", "clipped PU21-PSNR", 2),
    ("pu21_ssim", "PU21-SSIM", 4),
    ("log_rmse_clipped", "log2 RMSE clipped (stops)", 3),
]
BASELINE = "ldr_linear"
HARM_DB = 1.0  # a scene this far below the baseline counts as harmed


def summary(path: str) -> None:
    rows = list(csv.DictReader(open(path)))
    for suffix, title in (("", "aligned"), ("+CRF", "aligned + CRF correction")):
        print(f"\n{title}:\n")
        print("| method | clip | n | " + " | ".join(c[1] for c in COLUMNS) + " |")
        print("|---|---|---|" + "---|" * len(COLUMNS))
        for r in rows:
            cells = []
            for key, _, digits in COLUMNS:
                mean, ci = r[key + suffix], r[key + suffix + "_ci95"]
                cells.append(f"{float(mean):.{digits}f} ± {float(ci):.{digits}f}" if mean else "")
            print(f"| {r['method']} | {r['clip']} | {r['n']} | " + " | ".join(cells) + " |")


def per_scene(path: str, key: str = "pu21_psnr_clipped") -> None:
    rows = list(csv.DictReader(open(path)))
    value = defaultdict(dict)  # (image, clip) -> method -> value
    methods, clips = [], []
    for r in rows:
        value[(r["image"], r["clip"])][r["method"]] = float(r[key])
        if r["method"] != BASELINE and r["method"] not in methods:
            methods.append(r["method"])
        if r["clip"] not in clips:
            clips.append(r["clip"])
    images = sorted({image for image, _ in value})
    print(f"\nper scene: {key} minus {BASELINE}'s (dB), aligned:\n")
    head = [f"{m} clip {c}" for c in clips for m in methods]
    print("| scene | " + " | ".join(head) + " |")
    print("|---|" + "---|" * len(head))
    harmed = defaultdict(list)
    for image in images:
        cells = []
        for c in clips:
            for m in methods:
                v = value.get((image, c), {})
                if m not in v or BASELINE not in v:
                    cells.append("")
                    continue
                delta = v[m] - v[BASELINE]
                if delta < -HARM_DB:
                    harmed[(m, c)].append(image)
                cells.append(f"**{delta:+.2f}**" if delta < -HARM_DB else f"{delta:+.2f}")
        print(f"| {image} | " + " | ".join(cells) + " |")
    print()
    for c in clips:
        for m in methods:
            names = harmed[(m, c)]
            listed = f": {', '.join(names)}" if names else ""
            print(
                f"- {m}, clip {c}: {len(names)} scene(s) more than {HARM_DB:g} dB below "
                f"{BASELINE}{listed}"
            )


if __name__ == "__main__":
    summary(sys.argv[1])
    if len(sys.argv) > 2:
        per_scene(sys.argv[2])
