#!/usr/bin/env bash
# Evaluate the embedded default model on ../shared/data/hdr/val and refresh docs/evaluation/.
#
#   bash scripts/evaluate_default_model.sh [RUN_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/eval-default}
data=${HDRCNN_SHARED_DATA:-../shared/data}

hdrcnn evaluate --reference "$data/hdr/val" --params default --clip 95 97 --out "$out"
mkdir -p docs/evaluation
cp "$out/summary.csv" "$out/per_image.csv" "$out/settings.json" docs/evaluation/
python scripts/summary_table.py "$out/summary.csv" "$out/per_image.csv" \
  > docs/evaluation/summary.md
# one figure per kind of scene, downscaled for the README
python - "$out" <<'PY'
import sys
from pathlib import Path
from PIL import Image
out = Path(sys.argv[1])
for name in ("venice_sunset_1k_clip95.png", "st_fagans_interior_1k_clip95.png"):
    src = out / "figures" / name
    if src.is_file():
        img = Image.open(src)
        scale = min(1.0, 1400 / img.width)
        img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS) \
           .save(Path("docs/evaluation") / name, optimize=True)
PY
ls -la docs/evaluation
