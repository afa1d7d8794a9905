"""Test data: where the shared data lives (../shared/data beside the repository, or
$HDRCNN_SHARED_DATA), and random weights in both layouts, made with numpy alone."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from napari_hdrcnn.architecture import tensor_specs

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = Path(os.environ.get("HDRCNN_SHARED_DATA", SHARED / "data"))


def random_tensors(width_factor: float = 1.0, seed: int = 0) -> list[np.ndarray]:
    """Random weights with He-like scales, so activations stay in a sane range at any depth."""
    rng = np.random.default_rng(seed)
    out = []
    for spec in tensor_specs(width_factor):
        name, shape = spec.name, spec.shape
        if name.endswith("/W"):
            fan_in = shape[0] * shape[1] * (shape[3] if "/deconv/" in name else shape[2])
            if "/deconv/" in name:
                fan_in //= 4  # each output pixel sees a quarter of the 4x4 footprint
            arr = rng.normal(0.0, np.sqrt(1.0 / fan_in), shape)
        elif name.endswith("moving_variance"):
            arr = rng.uniform(0.5, 2.0, shape)
        elif name.endswith("/gamma"):
            arr = rng.uniform(0.5, 1.5, shape)
        else:  # biases, beta, moving mean
            arr = rng.normal(0.0, 0.1, shape)
        out.append(arr.astype(np.float32))
    return out


def write_authors_layout(tensors: list[np.ndarray], path: Path) -> Path:
    """What TensorLayer 1.x `save_npz` writes: np.savez(params=<object array>)."""
    arr = np.empty(len(tensors), dtype=object)
    for i, t in enumerate(tensors):
        arr[i] = t
    np.savez(path, params=arr)
    return path
