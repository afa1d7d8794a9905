"""GUI tests: a real napari viewer under Xvfb, in a pytest process of their own.

They live in this folder so that a GUI run collects (imports) nothing else: collecting a test
module that imports TensorFlow would load it beside napari's OpenGL, which crashes
(napari-notes.md).
"""

import sys

import pytest


@pytest.fixture(autouse=True)
def _no_tensorflow_in_the_viewer_process():
    assert "tensorflow" not in sys.modules, (
        "TensorFlow is loaded in the GUI test process; run the GUI tests apart: "
        "`python -m pytest tests/gui`"
    )
    yield
