#!/usr/bin/env bash
# Retrain the two shipped variants from the embedded default model and install them:
#   default-compr              fine-tuned on JPEG-compressed inputs (the role of hdrcnn-compr)
#   default-compr-regularized  default-compr fine-tuned with temporal regularisation, for video
#                              (the role of hdrcnn-compr-regularized)
#
#   bash scripts/train_variants.sh [RUNS_DIR]
#
# The settings are those of the shipped files (see `hdrcnn weights info default-compr`).
# VARIANT_MINUTES=N stops each fine-tune after N minutes (the run records the step it reached).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs}
data=${HDRCNN_SHARED_DATA:-../shared/data}
# the default model's do-no-harm recipe (faint highlights, over-boost loss) on JPEG inputs
camera=(--crop 256 --batch-size 4 --clip-fraction 0.02 0.15 --curve mixed
        --jpeg-probability 0.6 --jpeg-quality 30 100 --loss-mask blend
        --faint-highlights 0.35 --faint-headroom 1.0 1.5 --over-boost-weight 3
        --over-boost-stops 1.0)
common=(--data "$data/hdr/train" --val "$data/hdr/val" --checkpoint-every 250 --val-every 500
        --log-every 50 --keep-checkpoints 0)

hdrcnn train "${common[@]}" "${camera[@]}" --out "$runs/default-compr" --init default \
  --steps 1000 --lr 3e-5 --seed 1 ${VARIANT_MINUTES:+--max-minutes "$VARIANT_MINUTES"}
python scripts/ship_default_model.py "$runs/default-compr/weights.npz" \
  --run-dir "$runs/default-compr" --name default-compr --blend consistent

hdrcnn train "${common[@]}" "${camera[@]}" --out "$runs/default-compr-regularized" \
  --init default-compr --steps 500 --lr 3e-5 --seed 2 \
  --regularization coherence --reg-weight 0.95 --reg-noise 0.01 0.05 \
  ${VARIANT_MINUTES:+--max-minutes "$VARIANT_MINUTES"}
python scripts/ship_default_model.py "$runs/default-compr-regularized/weights.npz" \
  --run-dir "$runs/default-compr-regularized" --name default-compr-regularized \
  --blend consistent
