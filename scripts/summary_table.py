"""summary.csv of `hdrcnn evaluate` -> a markdown table (mean ± 95 % CI) for the README."""

import csv
import sys

COLUMNS = [
    ("pu21_psnr", "PU21-PSNR", 2),
    ("pu21_psnr_clipped", "clipped PU21-PSNR", 2),
    ("pu21_ssim", "PU21-SSIM", 4),
    ("log_rmse_clipped", "log2 RMSE clipped (stops)", 3),
]


def main(path: str) -> None:
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


if __name__ == "__main__":
    main(sys.argv[1])
