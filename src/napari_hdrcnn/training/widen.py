"""A trained network made wider without changing what it computes (Net2WiderNet), so that a
wider model starts from a trained one instead of from scratch.

Every channel of a layer's output is kept, and each new channel copies one of them (chosen at
random): its incoming weights, bias and batch-norm parameters. The layers that read that output
divide each old channel's outgoing weights among the channel and its copies, so their sums, and
the network's y_log, are unchanged: the layers between are convolutions, batch norm, ReLU, max
pooling and the skip connections' log, which all act on each channel alone. A little noise on
the copies' incoming weights (`noise`, relative to the kernel's spread) lets them drift apart
in training: Adam's steps do not depend on a gradient's scale, so exact copies would stay
copies. Numpy only; both trainers (`hdrcnn train --init`, scripts/gpu/train_jax.py) use it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..architecture import DECODER, ENCODER, FUSIONS, scaled, tensor_specs

DEFAULT_NOISE = 0.01


class _Channels(NamedTuple):
    """One layer output's channels after widening."""

    source: np.ndarray  # the old channel each one copies
    share: np.ndarray  # its share of that old channel's outgoing weights
    new: np.ndarray  # the added channels (their incoming weights get the noise)


def _widened(old: int, new: int, rng: np.random.Generator) -> _Channels:
    if new < old:
        raise ValueError(f"a layer cannot shrink from {old} to {new} channels")
    source = np.concatenate([np.arange(old), rng.integers(0, old, new - old)])
    copies = np.bincount(source, minlength=old)
    return _Channels(source, (1.0 / copies[source]).astype(np.float64), np.arange(new) >= old)


def _kept(n: int) -> _Channels:
    """Channels that keep their number (the RGB input, the 3-channel output layers)."""
    return _Channels(np.arange(n), np.ones(n), np.zeros(n, bool))


def _joined(a: _Channels, b: _Channels, old_a: int) -> _Channels:
    """The input of a fusion: the decoder's channels, then the skip's (indices offset by the
    old decoder width)."""
    return _Channels(
        np.concatenate([a.source, old_a + b.source]),
        np.concatenate([a.share, b.share]),
        np.concatenate([a.new, b.new]),
    )


def widened_tensors(
    tensors: list[np.ndarray],
    from_width: float,
    to_width: float,
    seed: int = 0,
    noise: float = DEFAULT_NOISE,
) -> list[np.ndarray]:
    """The 80 tensors of a width-`from_width` network widened to `to_width` (at least as
    wide), computing the same y_log (exactly with noise=0)."""
    if to_width < from_width:
        raise ValueError(f"cannot narrow a network from width {from_width:g} to {to_width:g}")
    rng = np.random.default_rng(seed)
    old = {s.name: t for s, t in zip(tensor_specs(from_width), tensors)}
    spaces: dict[str, _Channels] = {}

    def space(name: str, channels: int):
        spaces[name] = _widened(scaled(channels, from_width), scaled(channels, to_width), rng)
        return spaces[name]

    out: dict[str, np.ndarray] = {}

    def layer(name: str, src: _Channels, dst: _Channels, axes: tuple[int, int]) -> None:
        """Kernel `name/W` (input axis, output axis) and bias `name/b` from space src to dst."""
        in_axis, out_axis = axes
        w = np.take(old[f"{name}/W"].astype(np.float64), src.source, axis=in_axis)
        shape = [1] * w.ndim
        shape[in_axis] = -1
        w = w * src.share.reshape(shape)
        w = np.take(w, dst.source, axis=out_axis)
        if dst.new.any() and noise > 0:
            spread = float(np.std(old[f"{name}/W"])) or 1.0
            mask_shape = [1] * w.ndim
            mask_shape[out_axis] = -1
            w = w + noise * spread * rng.standard_normal(w.shape) * dst.new.reshape(mask_shape)
        out[f"{name}/W"] = w.astype(np.float32)
        out[f"{name}/b"] = old[f"{name}/b"][dst.source].astype(np.float32)

    def batch_norm(name: str, dst: _Channels) -> None:
        for part in ("beta", "gamma", "moving_mean", "moving_variance"):
            key = f"{name}/bn/{part}"
            out[key] = old[key][dst.source].astype(np.float32)

    conv, deconv = (2, 3), (3, 2)  # HWIO; transposed kernels are HW-out-in
    previous = _kept(3)
    for block, index, channels in ENCODER:
        name = f"conv{block}_{index}"
        layer(name, previous, space(name, channels), conv)
        previous = spaces[name]
    skips = {b: spaces[f"conv{b}_{2 if b <= 2 else 3}"] for b in range(1, 6)}
    layer("h6/conv", previous, space("h6/conv", 512), conv)
    batch_norm("h6", spaces["h6/conv"])
    previous = spaces["h6/conv"]
    fuse_with = dict(FUSIONS)
    for name, channels_in, channels_out in DECODER:
        if name in fuse_with:
            joined = _joined(previous, skips[fuse_with[name]], scaled(channels_in, from_width))
            layer(f"{name}/fuse", joined, space(f"{name}/fuse", channels_in), conv)
            previous = spaces[f"{name}/fuse"]
        layer(f"{name}/deconv", previous, space(f"{name}/deconv", channels_out), deconv)
        batch_norm(name, spaces[f"{name}/deconv"])
        previous = spaces[f"{name}/deconv"]
    joined = _joined(previous, skips[1], scaled(64, from_width))
    layer("h6/fuse", joined, space("h6/fuse", 64), conv)
    layer("h7/conv", spaces["h6/fuse"], _kept(3), conv)
    batch_norm("h7", _kept(3))
    layer("h7/fuse", _kept(6), _kept(3), conv)

    specs = tensor_specs(to_width)
    result = [out[s.name] for s in specs]
    for s, t in zip(specs, result):
        assert t.shape == s.shape, (s.name, t.shape, s.shape)
    return result
