#!/usr/bin/env bash
# Evaluate the embedded default model on ../shared/data/hdr/val and refresh docs/evaluation/.
#
#   bash scripts/evaluate_default_model.sh [RUN_DIR [PREVIOUS_DEFAULT.npz]]
#
# With a second argument, the previous default model is scored beside it ("previous-default"),
# so the per-scene table shows what the new one gains or loses on every scene.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/eval-default}
data=${HDRCNN_SHARED_DATA:-../shared/data}
params=(default)
labels=(default)
if [ -n "${2:-}" ]; then
  params=("$2" default)
  labels=(previous-default default)
fi

hdrcnn evaluate --reference "$data/hdr/val" --params "${params[@]}" --label "${labels[@]}" \
  --clip 95 97 --no-figures --out "$out"
mkdir -p docs/evaluation
cp "$out/summary.csv" "$out/per_image.csv" "$out/settings.json" docs/evaluation/
python scripts/summary_table.py "$out/summary.csv" "$out/per_image.csv" \
  > docs/evaluation/summary.md
ls -la docs/evaluation
