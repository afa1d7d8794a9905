"""Average every checkpoint of a training run into one weight file (as in SWA).

    python scripts/average_checkpoints.py runs/default-stage3 runs/default-stage3/averaged.npz
    python scripts/average_checkpoints.py RUN OUT.npz --from-step 3000   # the later ones only

Single checkpoints of a fine-tune swing by about a decibel on the validation scenes; their mean
is steadier than any one of them and needs no choice of step. The output keeps the last
checkpoint's metadata and records which steps went into it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from napari_hdrcnn.weights import average_weights, load_weights, write_weights

CHECKPOINT = re.compile(r"^step_(\d+)\.npz$")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", help="a training run folder (with checkpoints/)")
    parser.add_argument("out", help="the averaged weight file to write")
    parser.add_argument(
        "--from-step",
        type=int,
        default=0,
        help="only checkpoints at this step or later (e.g. the second half of a run)",
    )
    args = parser.parse_args()

    folder = Path(args.run_dir) / "checkpoints"
    found = sorted(
        (int(m.group(1)), p) for p in folder.glob("step_*.npz") if (m := CHECKPOINT.match(p.name))
    )
    found = [(s, p) for s, p in found if s >= args.from_step]
    if not found:
        raise SystemExit(f"{folder}: no checkpoints (step_XXXXXX.npz) from step {args.from_step}")
    files = [load_weights(p) for _, p in found]
    averaged = average_weights(files[::-1])  # the last checkpoint's metadata
    averaged.metadata.pop("sha256", None)
    steps = [s for s, _ in found]
    write_weights(
        averaged,
        args.out,
        averaged_steps=steps,
        averaged_sha256=[w.metadata["sha256"] for w in files],
    )
    print(f"wrote {args.out}: mean of {len(steps)} checkpoints (steps {steps[0]}-{steps[-1]})")


if __name__ == "__main__":
    main()
