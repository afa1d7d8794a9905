#!/usr/bin/env bash
# Evaluate the shipped variants against the default model and refresh docs/evaluation/:
#   jpeg90.md       hdrcnn evaluate on JPEG-90 inputs (the role of default-compr)
#   jpeg50.md       the same on JPEG-50 inputs (heavy compression, where default-compr should help)
#   temporal.md     synthetic pans across the validation panoramas (default-compr-regularized)
#
#   bash scripts/evaluate_variants.sh [RUN_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/eval-variants}
data=${HDRCNN_SHARED_DATA:-../shared/data}
models=(default default-compr default-compr-regularized)

hdrcnn evaluate --reference "$data/hdr/val" --params "${models[@]}" --clip 95 97 --jpeg 90 \
  --no-figures --out "$out/jpeg90"
mkdir -p docs/evaluation
python scripts/summary_table.py "$out/jpeg90/summary.csv" > docs/evaluation/jpeg90.md
hdrcnn evaluate --reference "$data/hdr/val" --params "${models[@]}" --clip 95 97 --jpeg 50 \
  --no-figures --out "$out/jpeg50"
python scripts/summary_table.py "$out/jpeg50/summary.csv" "$out/jpeg50/per_image.csv" \
  > docs/evaluation/jpeg50.md
python scripts/evaluate_temporal.py --reference "$data/hdr/val" --params "${models[@]}" \
  --jpeg 90 --out docs/evaluation/temporal.md
