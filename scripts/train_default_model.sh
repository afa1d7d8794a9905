#!/usr/bin/env bash
# Retrain the embedded default model and install it as src/napari_hdrcnn/data/default.npz.
#
#   bash scripts/train_default_model.sh [RUNS_DIR]
#
# Two stages, the settings of the shipped model (see its provenance: `hdrcnn weights info default`):
#   1. 5500 steps from scratch on 128 px crops (batch 8, lr 2e-4), about 60 minutes on 2 cores;
#   2. 1500 steps on 256 px crops (batch 4, lr 5e-5) from stage 1: more context around each
#      highlight, about 25 minutes.
# Each stage can be continued later with `hdrcnn train --resume RUN_DIR`.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs}
data=${HDRCNN_SHARED_DATA:-../shared/data}
common=(--data "$data/hdr/train" --val "$data/hdr/val" --clip-fraction 0.02 0.15 --curve mixed
        --checkpoint-every 500 --val-every 500 --keep-checkpoints 0)

hdrcnn train "${common[@]}" --out "$runs/default-stage1" --width-factor 0.125 --crop 128 \
  --batch-size 8 --steps 5500 --lr 2e-4 --seed 0 --log-every 100
hdrcnn train "${common[@]}" --out "$runs/default-stage2" --init "$runs/default-stage1/weights.npz" \
  --crop 256 --batch-size 4 --steps 1500 --lr 5e-5 --seed 3 --log-every 50
python scripts/ship_default_model.py "$runs/default-stage2/weights.npz" \
  --run-dir "$runs/default-stage2"
