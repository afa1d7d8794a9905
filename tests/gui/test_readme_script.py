"""The README's "drive the widget from a script" example, run exactly as a user runs it:
saved as script.py (no main guard) and started with `python script.py`, under Xvfb.

A short prologue replaces `napari.run` by a driver that, once the README's own run is done,
runs again (the warm worker must answer, same process) and then starts a third run and
cancels it. The README's lines themselves run unchanged.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

README = Path(__file__).resolve().parents[2] / "README.md"

DRIVER = r"""
# -- test prologue: napari.run becomes a driver; the README script follows unchanged --
import json as _json
import sys as _sys

import napari as _napari

_real_run = _napari.run


def _drive():
    from qtpy.QtCore import QTimer

    main = _sys.modules["__main__"]
    widget, viewer = main.widget, main.viewer
    log = {"results": [], "pids": [], "saved": [], "status": []}

    def finish():
        print("DRIVER " + _json.dumps(log), flush=True)
        viewer.close()

    def cancel_when_tiles_move(msg):
        if type(msg).__name__ == "Progress" and msg.tiles_done >= 1 and not log.get("cancel"):
            log["cancel"] = True
            widget.cancel()

    def on_result(layer):
        import os

        log["results"].append(None if layer is None else layer.name)
        log["pids"].append(widget._process.pid if widget._process is not None else None)
        log["saved"].append(os.path.isfile("sunset_hdr.exr"))
        log["status"].append(widget.status.value)
        if len(log["results"]) == 1:
            os.remove("sunset_hdr.exr")
            QTimer.singleShot(0, widget.run)  # the second run: the worker is warm
        elif len(log["results"]) == 2:
            widget.tile.value = "64"  # many tiles, so the cancel lands in the middle

            def third():
                worker = widget.run()
                worker.yielded.connect(cancel_when_tiles_move)

            QTimer.singleShot(0, third)
        else:
            QTimer.singleShot(0, finish)

    widget.reconstructed.connect(on_result)
    QTimer.singleShot(240_000, finish)  # never hang the suite
    _real_run()


_napari.run = _drive
# -- end of the test prologue --
"""


def readme_widget_script() -> str:
    text = README.read_text()
    match = re.search(
        r"<!-- widget-script -->\s*```python\n(.*?)```\s*<!-- /widget-script -->", text, re.S
    )
    assert match, "README.md lost its widget-script block"
    return match.group(1)


def test_the_readme_script_runs_unguarded_twice_and_cancels(tmp_path):
    body = readme_widget_script()
    assert "__main__" not in body  # the point: users write scripts without a main guard
    script = tmp_path / "script.py"
    script.write_text(DRIVER + body)
    env = dict(os.environ, NAPARI_HDRCNN_CONFIG_DIR=str(tmp_path / "config"))
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("DRIVER ")]
    assert lines, f"the script did not finish (exit {out.returncode}):\n{out.stderr[-3000:]}"
    log = json.loads(lines[-1][len("DRIVER ") :])
    assert "bootstrapping" not in out.stderr
    first, second, third = log["results"]
    assert first == "Clipped LDR photo HDR" and second.startswith(first) and third is None, log
    assert log["saved"][:2] == [True, True]  # the README's save callback wrote the EXR
    assert log["pids"][0] == log["pids"][1]  # the second run used the same warm worker
    assert "cancelled" in log["status"][2]
    assert out.returncode == 0, out.stderr[-3000:]
