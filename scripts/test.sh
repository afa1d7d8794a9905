#!/usr/bin/env bash
# The whole test run, from a fresh clone or an existing checkout:
#   1. the Debian packages the GUI tests need (tests/gui_requirements.py), installed when some
#      are missing and this user may (root, or sudo without a password) and apt-get exists;
#   2. a virtual environment: the active one, else $VENV, else .venv (made if missing);
#   3. the package with its test extra (editable, so a checkout under work is what is tested);
#   4. ruff format --check and ruff check, then mypy on the core modules (all configured in
#      pyproject.toml; .pre-commit-config.yaml runs the same before a commit);
#   5. pytest twice: the suite without the GUI tests, then tests/gui under Xvfb, in a process of
#      its own (TensorFlow and napari's software OpenGL crash in one process). Without the
#      system packages the GUI tests are skipped with one line naming what is missing.
# Options are passed to both pytest runs (e.g. --run-slow, -x, -k NAME). Exit status: the first
# failing step's; pytest's 5 (no tests collected, e.g. after -k) counts as success.
set -euo pipefail
cd "$(dirname "$0")/.."

# All in one function, called on the last line: bash then reads the whole script before it
# runs, so editing the file during a run cannot change what runs.
main() {
  say() { echo "scripts/test.sh: $*" >&2; }

  # -- 1. system packages -------------------------------------------------------------------------
  if ! python3 tests/gui_requirements.py >/dev/null; then
    as_root=()
    can_install=yes
    if ! command -v apt-get >/dev/null 2>&1; then
      say "no apt-get: install the GUI tests' system packages yourself"
      can_install=no
    elif [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
      else
        say "not root and no password-less sudo: Debian packages not installed"
        can_install=no
      fi
    fi
    if [ "$can_install" = yes ]; then
      say "installing the Debian packages the GUI tests need"
      export DEBIAN_FRONTEND=noninteractive
      # shellcheck disable=SC2046  # one word per package
      { "${as_root[@]}" apt-get update -qq &&
        "${as_root[@]}" apt-get install -y -qq --no-install-recommends \
          $(python3 tests/gui_requirements.py --packages) >/dev/null; } ||
        say "apt-get failed: the GUI tests will be skipped"
    fi
  fi

  # -- 2. virtual environment ---------------------------------------------------------------------
  venv=${VIRTUAL_ENV:-${VENV:-.venv}}
  if [ ! -x "$venv/bin/python" ]; then
    say "creating the virtual environment $venv"
    python3 -m venv "$venv"
  fi
  # shellcheck disable=SC1091
  . "$venv/bin/activate"

  # -- 3. the package -----------------------------------------------------------------------------
  # Environments made before the package depended on `tensorflow` hold `tensorflow-cpu`, which
  # installs the same module: remove both, so that one TensorFlow distribution is left.
  if python -m pip show -q tensorflow-cpu >/dev/null 2>&1; then
    say "replacing tensorflow-cpu by tensorflow (one TensorFlow distribution)"
    python -m pip uninstall -y -q tensorflow-cpu tensorflow
  fi
  python -m pip install -q -e ".[test]"

  # -- 4. lint and types --------------------------------------------------------------------------
  ruff format --check .
  ruff check .
  mypy  # the files and settings: [tool.mypy] in pyproject.toml

  # -- 5. the two pytest processes ----------------------------------------------------------------
  status=0
  run_pytest() {
    local rc=0
    python -m pytest "$@" || rc=$?
    if [ "$rc" -eq 5 ]; then rc=0; fi  # nothing collected: not a failure
    if [ "$status" -eq 0 ]; then status=$rc; fi
  }
  run_pytest --ignore=tests/gui "$@"
  if gui_missing=$(python tests/gui_requirements.py); then
    run_pytest tests/gui "$@"
  else
    echo "$gui_missing"
  fi
  exit "$status"
}

main "$@"
