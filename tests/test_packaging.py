"""Packaging facts: the version is written once, the package ships py.typed, and the type
check covers files that exist."""

from __future__ import annotations

from pathlib import Path

import pytest

import napari_hdrcnn

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_is_written_once():
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    source = ROOT / PYPROJECT["tool"]["hatch"]["version"]["path"]
    assert source == ROOT / "src/napari_hdrcnn/__init__.py"
    assert f'__version__ = "{napari_hdrcnn.__version__}"' in source.read_text()


def test_the_package_is_marked_typed():
    assert (Path(napari_hdrcnn.__file__).parent / "py.typed").is_file()
    assert PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [
        "src/napari_hdrcnn"
    ]


def test_mypy_checks_files_that_exist_and_the_test_command_runs_it():
    files = PYPROJECT["tool"]["mypy"]["files"]
    assert files and all((ROOT / f).exists() for f in files)
    assert any(
        dep.startswith("mypy") for dep in PYPROJECT["project"]["optional-dependencies"]["test"]
    )
    script = (ROOT / "scripts/test.sh").read_text()
    assert script.index("ruff check .") < script.index("\n  mypy") < script.index("run_pytest ")
    hooks = (ROOT / ".pre-commit-config.yaml").read_text()
    assert "entry: mypy" in hooks and "ruff format" in hooks and "ruff check" in hooks


def test_tests_find_their_helpers_through_pytest_pythonpath():
    assert PYPROJECT["tool"]["pytest"]["ini_options"]["pythonpath"] == ["tests"]
    for conftest in (ROOT / "tests").rglob("conftest.py"):
        assert "sys.path.insert" not in conftest.read_text(), conftest
