"""Score a training run's checkpoints by the evaluation protocol's clipped-region gain over
`ldr_linear` (napari_hdrcnn.evaluate.checkpoints: the figure to choose steps by; the training
loss does not predict it), while the run goes on or after it.

    python scripts/score_checkpoints.py RUN_DIR --reference ../shared/data/hdr/val
    python scripts/score_checkpoints.py RUN_DIR --reference VAL --follow   # beside `hdrcnn train`

Writes RUN_DIR/protocol_val.csv (step, weights, clip, mean gain, worst gain, scenes more than
1 dB below ldr_linear) and prints its lines. Checkpoints already in the file are skipped, so it
can be run again; --follow, started beside a run, keeps watching until the run writes its
final weights.npz and every checkpoint is scored. The network runs on this package's engine
(OpenVINO on a CPU), with the blend the embedded models ship with.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from napari_hdrcnn.evaluate import checkpoints
from napari_hdrcnn.evaluate.protocol import list_references
from napari_hdrcnn.io import read_image
from napari_hdrcnn.reconstruct import Reconstructor
from napari_hdrcnn.weights import BLENDS, load_weights

CHECKPOINT = re.compile(r"^step_(\d+)\.npz$")
OUT_NAME = "protocol_val.csv"


def scored_steps(path: Path) -> set[int]:
    if not path.exists():
        return set()
    lines = path.read_text().splitlines()[1:]
    return {int(line.split(",")[0]) for line in lines if line}


def batch_predictor(reconstructor: Reconstructor):
    """The (1, H, W, 3) -> y_log function the scorer calls, on the package's engine."""
    return lambda x: reconstructor.predict_log(x[0])[None]


def score_new(run: Path, scorer: checkpoints.CheckpointScorer, out: Path) -> int:
    """Score the checkpoints not in `out` yet; returns how many."""
    done = scored_steps(out)
    found = sorted(
        (int(m.group(1)), p)
        for p in (run / "checkpoints").glob("step_*.npz")
        if (m := CHECKPOINT.match(p.name)) and int(m.group(1)) not in done
    )
    if not out.exists():
        out.write_text(checkpoints.CSV_HEADER + "\n")
    for step, path in found:
        gains = scorer.gains(batch_predictor(Reconstructor(load_weights(path))))
        rows = checkpoints.csv_rows(step, path.name, gains)
        with open(out, "a") as f:
            f.write("".join(row + "\n" for row in rows))
        print("\n".join(rows), flush=True)
    return len(found)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run_dir", type=Path, help="a `hdrcnn train` run folder (with checkpoints/)")
    p.add_argument("--reference", type=Path, required=True, help="validation HDR scenes")
    p.add_argument("--clip", type=float, nargs="+", default=[95.0, 97.0])
    p.add_argument("--linearize", default="gamma2.2")
    p.add_argument("--blend", choices=BLENDS, default="consistent")
    p.add_argument("--follow", action="store_true", help="wait for new checkpoints")
    p.add_argument("--poll", type=float, default=30.0, help="seconds between looks (--follow)")
    args = p.parse_args()
    if not (args.run_dir / "checkpoints").is_dir() and not args.follow:
        raise SystemExit(f"{args.run_dir}: no checkpoints/ folder (is it a training run?)")
    scenes = [(path.name, read_image(path)) for path in list_references(args.reference)]
    scorer = checkpoints.CheckpointScorer(scenes, args.clip, args.linearize, args.blend)
    out = args.run_dir / OUT_NAME
    started = time.time()
    while True:
        # the run's final weights.npz, written after this started (a resumed run has an older
        # one), looked at before the checkpoints: its last checkpoint is then on disk too
        final = args.run_dir / "weights.npz"
        finished = final.exists() and final.stat().st_mtime >= started
        if (args.run_dir / "checkpoints").is_dir():
            score_new(args.run_dir, scorer, out)
        if not args.follow or finished:
            break
        time.sleep(args.poll)


if __name__ == "__main__":
    main()
