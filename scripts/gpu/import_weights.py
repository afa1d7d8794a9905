"""Turn a `scripts/gpu/train_jax.py` output (tensors t00..t79) into a package weight file.

    python scripts/gpu/import_weights.py RUN/NAME/averaged.npz OUT.npz [--blend consistent]

The tensors are checked against the layout of the width recorded in RUN/NAME/run.json; the
training settings of run.json (and done.json: steps, averaged checkpoints) become the file's
metadata, so `hdrcnn weights info` shows where the weights came from.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from napari_hdrcnn.architecture import tensor_specs
from napari_hdrcnn.weights import BLENDS, Weights, check_layout, write_weights


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tensors", type=Path, help="final.npz or averaged.npz of a train_jax run")
    p.add_argument("out", type=Path)
    p.add_argument("--blend", choices=BLENDS, default="consistent")
    p.add_argument("--linearize", default="gamma2.2")
    p.add_argument(
        "--data",
        default="../shared/data/hdr/train",
        help="the folder the training scenes came from (a pack does not record it)",
    )
    args = p.parse_args()
    run = json.loads((args.tensors.parent / "run.json").read_text())
    done_file = args.tensors.parent / "done.json"
    done = json.loads(done_file.read_text()) if done_file.exists() else {}
    width = float(run["width_factor"])
    with np.load(args.tensors, allow_pickle=False) as z:
        tensors = [np.asarray(z[f"t{i:02d}"], np.float32) for i in range(len(tensor_specs(width)))]
    check_layout(tensors, width, str(args.tensors))
    weights = Weights(tensors, width, args.linearize, blend=args.blend)
    # the same flat keys as `hdrcnn train` writes, so `hdrcnn weights info` reads alike
    metadata = {k: v for k, v in run.items() if k not in ("trainer", "width_factor")}
    if args.tensors.name == "averaged.npz":
        # runs before averaged_steps was recorded say only how many checkpoints were averaged
        metadata["averaged_steps"] = done.get("averaged_steps") or done.get("averaged_checkpoints")
    metadata.update(
        trained_by=run.get("trainer", "scripts/gpu/train_jax.py"),
        data=args.data,
        regularization="none",
        step=done.get("steps"),
        tensors=args.tensors.name,
    )
    write_weights(weights, args.out, **metadata)
    print(f"{args.out}: width {width:g}, {done.get('steps', '?')} steps, blend {args.blend}")


if __name__ == "__main__":
    main()
