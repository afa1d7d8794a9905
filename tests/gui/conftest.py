"""GUI tests: a real napari viewer under Xvfb, in a pytest process of their own.

They live in this folder so that a GUI run collects (imports) nothing else: collecting a test
module that imports TensorFlow would load it beside napari's software OpenGL, and the two
crash together in one process. Without the system's X and Qt libraries the tests skip, naming
what is missing (tests/gui_requirements.py), rather than abort in the Qt platform plugin.
"""

import sys

import pytest

from gui_requirements import missing, skip_reason


def pytest_collection_modifyitems(config, items):
    absent = missing()
    if absent:
        skip = pytest.mark.skip(reason=skip_reason(absent))
        for item in items:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_tensorflow_in_the_viewer_process():
    assert "tensorflow" not in sys.modules, (
        "TensorFlow is loaded in the GUI test process; run the GUI tests apart: "
        "`python -m pytest tests/gui`"
    )
    yield


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    """The plugin's settings go to a fresh folder per test, never the user's."""
    monkeypatch.setenv("NAPARI_HDRCNN_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "config"


@pytest.fixture(scope="module", autouse=True)
def stop_worker_processes():
    """The warm worker is shared by a module's tests (TensorFlow imports once); end it after."""
    yield
    from napari_hdrcnn._worker import stop_shared_processes

    stop_shared_processes()
