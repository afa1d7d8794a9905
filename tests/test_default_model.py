"""The embedded default model: present, small, documented, and it reconstructs."""

from __future__ import annotations

import numpy as np

from napari_hdrcnn import reconstruct
from napari_hdrcnn.image_io import read_image
from napari_hdrcnn.weights import default_weights_path, load_weights

SAMPLE = default_weights_path().parent / "sample_clipped_sunset.png"


def test_default_model_ships_with_provenance():
    path = default_weights_path()
    assert path.is_file() and path.stat().st_size < 8 * 2**20
    w = load_weights("default")
    meta = w.metadata
    assert w.width_factor == 0.125 and w.linearize == "gamma2.2"
    assert meta["name"] == "default" and meta["step"] > 0 and meta["seed"] == 0
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
