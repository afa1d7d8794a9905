"""Shared fixtures: random weight files in both layouts, made with numpy alone (testdata.py).

The tests folder is on sys.path through pytest's `pythonpath` setting (pyproject.toml), so the
helper modules here import as `testdata`, `numpy_reference`, ...
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_hdrcnn.weights import Weights, write_weights
from testdata import random_tensors, write_authors_layout


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


@pytest.hookimpl(trylast=True)  # after `-m` has deselected what the run does not hold
def pytest_collection_modifyitems(config, items):
    """Skip slow tests unless asked; keep GUI tests apart from TensorFlow.

    TensorFlow and napari's software OpenGL (llvmpipe) crash in one process, so a
    session may hold GUI tests or the others, never both.
    """
    if not config.getoption("--run-slow"):
        slow = [i for i in items if i.get_closest_marker("slow")]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [i for i in items if not i.get_closest_marker("slow")]
    gui = [i for i in items if i.get_closest_marker("gui")]
    if gui and len(gui) != len(items):
        raise pytest.UsageError(
            "GUI tests (marker 'gui', in tests/gui) must run in their own pytest process, apart "
            "from tests that load TensorFlow: run `python -m pytest --ignore=tests/gui` and "
            "`python -m pytest tests/gui` separately"
        )


@pytest.fixture(scope="session")
def authors_weights_file(tmp_path_factory) -> Path:
    """A full-width random file in the authors' layout."""
    path = tmp_path_factory.mktemp("weights") / "hdrcnn_params_random.npz"
    return write_authors_layout(random_tensors(1.0, seed=1), path)


@pytest.fixture(scope="session")
def small_weights_file(tmp_path_factory) -> Path:
    """A width-0.125 random file in the project's format (fast in tests)."""
    path = tmp_path_factory.mktemp("weights") / "small.npz"
    write_weights(
        Weights(random_tensors(0.125, seed=2), width_factor=0.125, linearize="gamma2.2"),
        path,
        provenance="random test weights",
    )
    return path


@pytest.fixture
def clipped_photo() -> np.ndarray:
    """A small 8-bit photo-like image with a blown-out highlight and smooth gradients."""
    h, w = 72, 100
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.25 + 0.5 * (xx / w)[..., None] * np.array([1.0, 0.8, 0.6], np.float32)
    sun = np.exp(-(((yy - 30) ** 2 + (xx - 60) ** 2) / 150.0))[..., None] * 3.0
    img = np.clip(base + sun + 0.03 * np.sin(xx / 3.0)[..., None], 0, 1)
    return (img * 255 + 0.5).astype(np.uint8)
