"""The README's test command: one script that sets everything up, and GUI tests that skip
(naming what is missing) instead of aborting where the system libraries are not there."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from gui_requirements import DEBIAN_PACKAGES, missing, skip_reason

ROOT = Path(__file__).resolve().parents[1]


def readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```\w*\n(.*?)```\s*<!-- /{marker} -->", text, re.S)
    assert match, f"README.md has no {marker} block"
    return match.group(1).strip()


def test_the_readme_test_command_is_the_script_and_ci_runs_only_it():
    assert readme_block("test-command") == "bash scripts/test.sh"
    script = (ROOT / "scripts" / "test.sh").read_text()
    for step in (
        "apt-get install",
        "python3 -m venv",
        'pip install -q -e ".[test]"',
        "ruff format --check .",
        "ruff check .",
        "--ignore=tests/gui",
        "tests/gui",
    ):
        assert step in script, step
    ci = (ROOT / ".ci" / "run").read_text()
    for installer in ("apt-get", "pip ", "pip.", "venv"):
        assert installer not in ci  # it installs nothing of its own
    assert "test-command" in ci and 'eval "$test_command"' in ci


def test_the_script_installs_exactly_the_packages_the_gui_check_knows():
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "gui_requirements.py"), "--packages"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == list(DEBIAN_PACKAGES)
    assert "libxcb-cursor0" in DEBIAN_PACKAGES and "xvfb" in DEBIAN_PACKAGES


def test_missing_libraries_and_programs_are_named_by_package():
    packages = {"libfake-nothing0": "libfake-nothing.so.0", "fakexvfb": "Xvfb", "docs": None}
    absent = missing(packages, environ={"PATH": "/nonexistent"})
    assert absent == ["libfake-nothing0 (libfake-nothing.so.0)", "fakexvfb (Xvfb)"]
    # with a display already there, Xvfb is not needed
    assert missing({"fakexvfb": "Xvfb"}, environ={"PATH": "", "DISPLAY": ":5"}) == []
    assert "libfake-nothing0" in skip_reason(absent)


def test_gui_tests_skip_with_the_reason_instead_of_aborting_without_xvfb(tmp_path):
    """No display and no Xvfb on PATH: before, pytest-qt's qapp aborted the whole process."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PATH"] = str(Path(sys.executable).parent)  # python, but no Xvfb
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/gui",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "not readme",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Fatal Python error" not in out.stderr
    assert re.search(r"\d+ skipped", out.stdout) and " passed" not in out.stdout
    assert "GUI tests skipped: missing xvfb (Xvfb)" in out.stdout


def test_the_readme_main_command_reconstructs_a_photo_the_repository_ships(tmp_path):
    command = readme_block("main-command")
    predict = shlex.split(command.split("&&")[-1])
    assert predict[:2] == ["hdrcnn", "predict"]
    args = predict[2:]
    photo = (ROOT / args[args.index("--im_dir") + 1]).resolve()
    assert photo.is_file() and photo.is_relative_to(ROOT)  # nothing outside the clone
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", str(photo)], cwd=ROOT, capture_output=True
    )
    assert tracked.returncode == 0, f"{photo} is not in the repository"

    from napari_hdrcnn.cli import main

    out = tmp_path / "out"
    args[args.index("--out_dir") + 1] = str(out)
    args[args.index("--im_dir") + 1] = str(photo)
    assert main(["predict", *args, "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "000001_in.png",
        "000001_out.exr",
        "000001_out.png",
    ]
