"""The embedded default model: present, small, documented, and it reconstructs."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hdrcnn import reconstruct
from napari_hdrcnn.io import read_image
from napari_hdrcnn.weights import default_weights_path, embedded_weights_path, load_weights

SAMPLE = default_weights_path().parent / "sample_clipped_sunset.png"


def test_default_model_ships_with_provenance():
    path = default_weights_path()
    assert path.is_file() and path.stat().st_size < 8 * 2**20
    w = load_weights("default")
    meta = w.metadata
    assert w.width_factor == 0.125 and w.linearize == "gamma2.2" and w.blend == "consistent"
    # stages 4 and 5: the do-no-harm recipe (README, "The embedded default model"); stage 5 ran
    # on a GPU with scripts/gpu/train_jax.py, which records how many checkpoints it averaged
    assert meta["over_boost_weight"] > 0 and meta["camera"]["faint_probability"] > 0
    assert meta["loss_mask"] == "blend" and meta["trained_by"] == "scripts/gpu/train_jax.py"
    assert meta["averaged_steps"] == 4 and meta["init"] == "default"
    assert len(meta["init_sha256"]) == 64
    assert meta["name"] == "default" and meta["step"] > 0 and isinstance(meta["seed"], int)
    assert meta["data"].endswith("hdr/train") and len(meta["git_commit"]) == 40
    assert "train_default_model.sh" in meta["retrain"]


def test_default_model_restores_highlights_of_the_sample_photo():
    photo = read_image(SAMPLE)
    hdr, mask = reconstruct(photo, "default", device="cpu", return_mask=True)
    clipped = mask == 1
    assert clipped.mean() > 0.01
    # the network's values replace white where the input clipped, and they are HDR (> 1)
    assert np.median(hdr[clipped].max(axis=-1)) > 1.0
    far = mask == 0
    np.testing.assert_allclose(hdr[far], (photo[far] / 255.0) ** 2.2, rtol=1e-5)


@pytest.mark.parametrize(
    "name, role", [("default-compr", "jpeg"), ("default-compr-regularized", "regularization")]
)
def test_variants_ship_with_their_recipe(name, role):
    path = embedded_weights_path(name)
    assert path.is_file() and path.stat().st_size < 8 * 2**20
    w = load_weights(name)
    meta = w.metadata
    assert meta["name"] == name and meta["step"] > 0 and len(meta["git_commit"]) == 40
    assert meta["init"]  # fine-tuned from the default model, and the file says from what
    assert "train_variants.sh" in meta["retrain"]
    if role == "jpeg":
        assert meta["camera"]["jpeg_probability"] > 0
    else:
        assert meta["regularization"] == "coherence"
    # it reconstructs: HDR values where the sample photo clipped
    hdr, mask = reconstruct(read_image(SAMPLE), name, device="cpu", return_mask=True)
    assert np.median(hdr[mask == 1].max(axis=-1)) > 1.0
