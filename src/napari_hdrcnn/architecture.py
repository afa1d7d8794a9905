"""The HDR-CNN tensor layout, without TensorFlow.

The authors' weight files hold 80 unnamed tensors in network construction order. This module is
the single description of that order (names, shapes) for any channel-width factor, shared by the
model, the weight-file reader/writer and the independent NumPy reference used in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ARCHITECTURE = "hdrcnn"
N_TENSORS = 80

# VGG16 encoder: (block, conv index, output channels at width 1.0)
ENCODER = [
    (1, 1, 64),
    (1, 2, 64),
    (2, 1, 128),
    (2, 2, 128),
    (3, 1, 256),
    (3, 2, 256),
    (3, 3, 256),
    (4, 1, 512),
    (4, 2, 512),
    (4, 3, 512),
    (5, 1, 512),
    (5, 2, 512),
    (5, 3, 512),
]
VGG_MEAN_BGR = (103.939, 116.779, 123.68)
BN_EPSILON = 1e-5
BLEND_TAU = 0.05
LOG_EPS = 1.0 / 255.0


def blend_alpha(level, clip=np.clip):
    """The blend's weight of the network output: clip((level - 1 + tau) / tau, 0, 1), 1 at
    white, 0 below 1 - tau. Arithmetic only, so numpy arrays and TensorFlow tensors both go
    through this one formula: pass `tf.clip_by_value` as `clip` for tensors."""
    return clip((level - 1.0 + BLEND_TAU) / BLEND_TAU, 0.0, 1.0)


# Decoder deconv blocks: (name, in channels, out channels) at width 1.0.
DECODER = [("h1", 512, 512), ("h2", 512, 512), ("h3", 512, 256), ("h4", 256, 128), ("h5", 128, 64)]
# Which skip each decoder stage fuses with, in order (s5 first); s0 is the input image.
FUSIONS = [("h2", 5), ("h3", 4), ("h4", 3), ("h5", 2), ("h6", 1)]


def scaled(channels: int, width_factor: float) -> int:
    """Channel count of a layer for a width factor (1.0 = the authors' network)."""
    return max(1, int(round(channels * width_factor)))


@dataclass(frozen=True)
class TensorSpec:
    index: int
    name: str
    shape: tuple[int, ...]


def tensor_specs(width_factor: float = 1.0) -> list[TensorSpec]:
    """Names and shapes of the 80 tensors, in the authors' file order."""
    w = lambda c: scaled(c, width_factor)  # noqa: E731
    out: list[tuple[str, tuple[int, ...]]] = []

    cin = 3
    for block, conv, c in ENCODER:
        cout = w(c)
        out.append((f"conv{block}_{conv}/W", (3, 3, cin, cout)))
        out.append((f"conv{block}_{conv}/b", (cout,)))
        cin = cout
    c512 = w(512)

    def bn(name: str, c: int) -> None:
        for part in ("beta", "gamma", "moving_mean", "moving_variance"):
            out.append((f"{name}/bn/{part}", (c,)))

    out.append(("h6/conv/W", (3, 3, c512, c512)))
    out.append(("h6/conv/b", (c512,)))
    bn("h6", c512)

    skip_channels = {5: w(512), 4: w(512), 3: w(256), 2: w(128), 1: w(64)}
    for name, cin_base, cout_base in DECODER:
        cin_d, cout_d = w(cin_base), w(cout_base)
        if name != "h1":
            skip = dict(FUSIONS)[name]
            out.append((f"{name}/fuse/W", (1, 1, cin_d + skip_channels[skip], cin_d)))
            out.append((f"{name}/fuse/b", (cin_d,)))
        out.append((f"{name}/deconv/W", (4, 4, cout_d, cin_d)))
        out.append((f"{name}/deconv/b", (cout_d,)))
        bn(name, cout_d)

    c64 = w(64)
    out.append(("h6/fuse/W", (1, 1, c64 + skip_channels[1], c64)))
    out.append(("h6/fuse/b", (c64,)))
    out.append(("h7/conv/W", (1, 1, c64, 3)))
    out.append(("h7/conv/b", (3,)))
    bn("h7", 3)
    out.append(("h7/fuse/W", (1, 1, 6, 3)))
    out.append(("h7/fuse/b", (3,)))

    assert len(out) == N_TENSORS, len(out)
    return [TensorSpec(i, n, s) for i, (n, s) in enumerate(out)]


def initial_tensors(width_factor: float = 1.0, seed: int = 0) -> list[np.ndarray]:
    """The authors' initialisation for training from scratch, as the 80 arrays.

    Convs: He-normal kernels, zero bias. Transposed convs: bilinear 2x upsampling per channel.
    Skip fusions: `decoder + t` (identity on both halves). Batch norm: gamma 1, beta 0, mean 0,
    variance 1.
    """
    rng = np.random.default_rng(seed)
    bilinear = np.array([0.25, 0.75, 0.75, 0.25], np.float32)
    bilinear = np.outer(bilinear, bilinear)
    arrays = []
    for spec in tensor_specs(width_factor):
        name, shape = spec.name, spec.shape
        if name.endswith(("/b", "/beta", "moving_mean")):
            arr = np.zeros(shape, np.float32)
        elif name.endswith(("/gamma", "moving_variance")):
            arr = np.ones(shape, np.float32)
        elif "/deconv/" in name:
            arr = np.zeros(shape, np.float32)
            for c in range(min(shape[2], shape[3])):
                arr[:, :, c, c] = bilinear
        elif "/fuse/" in name:
            cin, cout = shape[2], shape[3]
            arr = np.zeros(shape, np.float32)
            half = cin - cout  # decoder channels come first, then the skip's
            for c in range(cout):
                arr[0, 0, c, c] = 1.0
                if c < half:
                    arr[0, 0, cout + c, c] = 1.0
        else:
            fan_in = int(np.prod(shape[:3]))
            arr = rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
        arrays.append(arr)
    return arrays


def infer_width_factor(first_kernel_out_channels: int) -> float:
    """Width factor from conv1_1's output channels (64 at width 1.0)."""
    return first_kernel_out_channels / 64.0


def parameter_count(width_factor: float = 1.0) -> int:
    total = 0
    for spec in tensor_specs(width_factor):
        n = 1
        for d in spec.shape:
            n *= d
        total += n
    return total


def macs_per_pixel(width_factor: float = 1.0) -> float:
    """Multiply-accumulates per input pixel (for benchmarks: 363.3 GMAC at 1024x768, width 1)."""
    total = 0.0
    # resolution level of each tensor's layer (1 = full res, 1/4 = half res ...)
    level = {}
    for block, conv, _ in ENCODER:
        level[f"conv{block}_{conv}"] = 4.0 ** -(block - 1)
    level["h6/conv"] = 4.0**-5
    for i, (name, _, _) in enumerate(DECODER):
        # a deconv's cost counted at its output resolution: in*out*16 per input pixel = /4 out
        level[f"{name}/deconv"] = 4.0 ** -(5 - i)
        level[f"{name}/fuse"] = 4.0 ** -(5 - i)
    level["h6/fuse"] = 1.0
    level["h7/conv"] = 1.0
    level["h7/fuse"] = 1.0
    for spec in tensor_specs(width_factor):
        if not spec.name.endswith("/W"):
            continue
        layer = spec.name[:-2]
        n = 1
        for d in spec.shape:
            n *= d
        total += n * level[layer]
    return total
