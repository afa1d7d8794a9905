"""Pack HDR training scenes into compact files for a GPU machine that cannot read .hdr/.exr.

    python scripts/gpu/pack_scenes.py DATA_DIR OUT_DIR [--parts N]

Each scene is decoded with the package's own readers and stored as Radiance RGBE (8-bit
mantissas sharing an exponent, the precision of the .hdr files themselves), channel-planar and
xz-compressed, so a training set travels in a few tens of MiB; `scripts/gpu/train_jax.py`
decodes it with numpy alone. Scenes are spread over N parts of similar size (a transfer limit).
"""

from __future__ import annotations

import argparse
import json
import lzma
from pathlib import Path

import numpy as np


def to_rgbe(image: np.ndarray) -> np.ndarray:
    """Linear float (H, W, 3) -> RGBE uint8 (4, H, W), planar."""
    a = np.asarray(image, np.float32)[..., :3]
    a = np.maximum(np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0), 0.0)
    peak = a.max(axis=-1)
    mantissa, exponent = np.frexp(peak)
    live = peak > 1e-32
    scale = np.where(live, mantissa * 256.0 / np.where(live, peak, 1.0), 0.0)
    rgb = np.clip(np.floor(a * scale[..., None]), 0, 255).astype(np.uint8)
    e = np.where(live, exponent + 128, 0).astype(np.uint8)
    return np.ascontiguousarray(np.concatenate([rgb, e[..., None]], -1).transpose(2, 0, 1))


def main() -> None:
    from napari_hdrcnn.training.data import image_files, read_linear, sanitize_linear

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--parts", type=int, default=2)
    args = p.parse_args()
    blobs = []
    for f in image_files(args.data, "hdr"):
        linear = sanitize_linear(read_linear(f, "gamma2.2"), str(f))
        rgbe = to_rgbe(linear)
        blobs.append((f.name, rgbe.shape[1:], lzma.compress(rgbe.tobytes(), preset=6)))
        print(
            f"{f.name}: {rgbe.shape[2]}x{rgbe.shape[1]}, {len(blobs[-1][2]) >> 10} KiB", flush=True
        )
    parts: list[list] = [[] for _ in range(args.parts)]
    for blob in sorted(blobs, key=lambda b: -len(b[2])):  # largest first onto the lightest part
        min(parts, key=lambda ps: sum(len(b[2]) for b in ps)).append(blob)
    for k, part in enumerate(parts):
        folder = args.out / f"part{k}"
        folder.mkdir(parents=True, exist_ok=True)
        index = []
        for name, shape, data in part:
            (folder / f"{name}.rgbe.xz").write_bytes(data)
            index.append({"name": name, "height": int(shape[0]), "width": int(shape[1])})
        (folder / "index.json").write_text(json.dumps(index, indent=1))
        size = sum(len(b[2]) for b in part)
        print(f"part{k}: {len(part)} scenes, {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
