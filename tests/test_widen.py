"""training.widen: a trained network made wider computes the same y_log (checked with the
independent numpy reference network), its new channels can drift apart, and narrowing is
refused."""

import numpy as np
import pytest

from napari_hdrcnn.architecture import tensor_specs
from napari_hdrcnn.training.widen import widened_tensors
from numpy_reference import forward_log
from testdata import random_tensors

X = np.random.default_rng(0).uniform(0, 1, (64, 96, 3)).astype(np.float32)
X[10:20, 30:50] = 1.0  # a clipped patch, where the network's output matters


@pytest.mark.parametrize("to_width", [0.1875, 0.25])
def test_the_wider_network_computes_the_same_output(to_width):
    narrow = random_tensors(0.125, seed=1)
    wide = widened_tensors(narrow, 0.125, to_width, seed=3, noise=0.0)
    assert [t.shape for t in wide] == [s.shape for s in tensor_specs(to_width)]
    assert all(t.dtype == np.float32 for t in wide)
    y_narrow, y_wide = forward_log(X, narrow), forward_log(X, wide)
    assert np.abs(y_wide - y_narrow).max() < 1e-5 * np.abs(y_narrow).max()


def test_same_width_is_the_same_network():
    t = random_tensors(0.125, seed=2)
    same = widened_tensors(t, 0.125, 0.125, noise=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(t, same))


def test_new_channels_are_noisy_copies_of_old_ones():
    """With the default noise the copies differ a little from their sources (so training can
    pull them apart) and the output moves only a little."""
    narrow = random_tensors(0.125, seed=1)
    wide = widened_tensors(narrow, 0.125, 0.25, seed=3)
    w_old, w_new = narrow[0], wide[0]  # conv1_1: (3, 3, 3, 8) -> (3, 3, 3, 16)
    assert np.array_equal(w_new[..., :8], w_old)  # the old channels stay as they were
    added = w_new[..., 8:]
    nearest = np.abs(added[..., :, None] - w_old[..., None, :]).max(axis=(0, 1, 2)).min(axis=1)
    spread = float(np.std(w_old))
    assert np.all(nearest > 0) and np.all(nearest < 0.1 * spread)
    y_narrow, y_wide = forward_log(X, narrow), forward_log(X, wide)
    assert np.abs(y_wide - y_narrow).max() < 0.05 * np.abs(y_narrow).max()


def test_outgoing_weights_are_shared_among_copies():
    narrow = random_tensors(0.125, seed=1)
    wide = widened_tensors(narrow, 0.125, 0.25, seed=3, noise=0.0)
    old, new = narrow[2], wide[2]  # conv1_2/W: its input is conv1_1's widened output
    # summed over the copies of each input channel, the new kernel is the old one (at the
    # old output channels)
    sources = [int(np.argmin(np.abs(wide[0][..., j : j + 1] - narrow[0]).max(axis=(0, 1, 2))))
               for j in range(16)]  # fmt: skip
    summed = np.zeros_like(old)
    for j, src in enumerate(sources):
        summed[:, :, src, :] += new[:, :, j, :8]
    np.testing.assert_allclose(summed, old, rtol=1e-6, atol=1e-7)


def test_narrowing_is_refused():
    with pytest.raises(ValueError, match="cannot narrow"):
        widened_tensors(random_tensors(0.25, seed=1), 0.25, 0.125)
