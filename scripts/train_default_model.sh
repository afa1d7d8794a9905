#!/usr/bin/env bash
# Retrain the embedded default model and install it as src/napari_hdrcnn/data/default.npz.
#
#   bash scripts/train_default_model.sh [RUNS_DIR]
#
# Four stages, the settings of the shipped model (provenance: `hdrcnn weights info default`):
#   1. 5500 steps from scratch on 128 px crops (batch 8, lr 2e-4), about 60 minutes on 2 cores;
#   2. 1500 steps on 256 px crops (batch 4, lr 5e-5) from stage 1: more context around each
#      highlight, about 25 minutes;
#   3. 2500 steps from stage 2 with the blend loss mask (the pixels the inference blend takes
#      from the network are trained too) and 25 % faint-highlight samples (lr 1e-4, so that the
#      output layer's bias, which sets how much every near-white pixel is boosted, can move),
#      about 30 minutes; the mean of its ten checkpoints goes on to stage 4;
#   4. 1250 steps from stage 3 on all training scenes (89 since 2026-12-02) with 35 %
#      faint-highlight samples (1.0-1.5 x white) and the over-boost loss (a faint highlight
#      predicted too bright costs 4 x), about 70 minutes on a busy 2-core CPU; the mean of its
#      checkpoints is shipped with the consistent blend (the network held to what the photo
#      measured);
#   5. 493 steps from stage 4 on a GPU (scripts/gpu/train_jax.py: the same network, loss and
#      camera in JAX), batch 16 of 320 px crops, the stage-4 recipe, mean of the checkpoints at
#      steps 200, 300, 400 and 493; about 100 s on one H200 (the camera's CPU processes are the
#      bottleneck). Without a GPU it runs on the CPU too, slowly.
# Stages 1-4 can be continued later with `hdrcnn train --resume RUN_DIR`.
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
hdrcnn train "${common[@]}" --out "$runs/default-stage3" --init "$runs/default-stage2/weights.npz" \
  --crop 256 --batch-size 4 --steps 2500 --lr 1e-4 --seed 5 --log-every 50 --loss-mask blend \
  --faint-highlights 0.25 --faint-headroom 1.0 1.3 --checkpoint-every 250 --val-every 250
python scripts/average_checkpoints.py "$runs/default-stage3" "$runs/default-stage3/averaged.npz"
hdrcnn train "${common[@]}" --out "$runs/default-stage4" --init "$runs/default-stage3/averaged.npz" \
  --crop 256 --batch-size 4 --steps 1250 --lr 1e-4 --seed 11 --log-every 25 \
  --loss-mask blend --faint-highlights 0.35 --faint-headroom 1.0 1.5 --over-boost-weight 3 \
  --over-boost-stops 1.0 --checkpoint-every 250 --val-every 500
python scripts/average_checkpoints.py "$runs/default-stage4" "$runs/default-stage4/averaged.npz"
python scripts/gpu/train_jax.py --scenes "$data/hdr/train" --out "$runs/default-stage5" \
  --model "default:0.125:$runs/default-stage4/averaged.npz:3:1e-4" --steps 493 --batch-size 16 \
  --crop 320 --faint-highlights 0.35 --faint-headroom 1.0 1.5 --over-boost-weight 3 \
  --over-boost-stops 1.0 --checkpoint-every 100 --average-from 0.4 --seed 0
python scripts/gpu/import_weights.py "$runs/default-stage5/default/averaged.npz" \
  "$runs/default-stage5/averaged.npz"
cp "$runs/default-stage5/default/log.csv" "$runs/default-stage5/default/train_log.csv"
python scripts/ship_default_model.py "$runs/default-stage5/averaged.npz" \
  --run-dir "$runs/default-stage5/default" --blend consistent
