#!/usr/bin/env bash
# Retrain the embedded default model and install it as src/napari_hdrcnn/data/default.npz.
#
#   bash scripts/train_default_model.sh [RUN_DIR] [MINUTES]
#
# The settings are those of the shipped model (see its provenance: `hdrcnn weights info default`).
# The run can be continued later with `hdrcnn train --resume RUN_DIR`.
set -euo pipefail
cd "$(dirname "$0")/.."
run_dir=${1:-runs/default-w0125}
minutes=${2:-100}
data=${HDRCNN_SHARED_DATA:-../shared/data}

hdrcnn train --data "$data/hdr/train" --val "$data/hdr/val" --out "$run_dir" \
  --width-factor 0.125 --crop 128 --batch-size 8 --steps 20000 --max-minutes "$minutes" \
  --lr 2e-4 --clip-fraction 0.02 0.15 --curve mixed --seed 0 \
  --checkpoint-every 500 --val-every 500 --log-every 100 --keep-checkpoints 0
python scripts/ship_default_model.py "$run_dir/weights.npz" --run-dir "$run_dir"
