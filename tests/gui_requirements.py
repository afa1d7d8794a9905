"""What the GUI tests need from the system, and whether it is there.

A Qt platform plugin that cannot load its libraries aborts the whole process ("Fatal Python
error: Aborted" in pytest-qt's `qapp`), with no exception to catch, so the GUI tests check
first and skip, naming what is missing. `scripts/test.sh` installs the same packages.

    python tests/gui_requirements.py             one line naming what is missing (exit 1), or
                                                 nothing (exit 0)
    python tests/gui_requirements.py --packages  the Debian packages to install
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys

# Debian package -> what shows it is installed: a program on PATH, a shared library, or None
# (installed with the others, no cheap check)
DEBIAN_PACKAGES: dict[str, str | None] = {
    "xvfb": "Xvfb",
    "xauth": None,
    "libxcb-icccm4": "libxcb-icccm.so.4",
    "libxcb-keysyms1": "libxcb-keysyms.so.1",
    "libxcb-image0": "libxcb-image.so.0",
    "libxcb-render-util0": "libxcb-render-util.so.0",
    "libxcb-randr0": "libxcb-randr.so.0",
    "libxcb-shape0": "libxcb-shape.so.0",
    "libxcb-cursor0": "libxcb-cursor.so.0",
    "libxkbcommon-x11-0": "libxkbcommon-x11.so.0",
    "libgl1": "libGL.so.1",
    "libegl1": "libEGL.so.1",
    "libgl1-mesa-dri": None,
    "libglx-mesa0": "libGLX_mesa.so.0",
    "libfontconfig1": "libfontconfig.so.1",
    "libdbus-1-3": "libdbus-1.so.3",
    "libglib2.0-0": "libglib-2.0.so.0",
}


def _present(probe: str, environ) -> bool:
    if ".so" in probe:
        try:
            ctypes.CDLL(probe)
        except OSError:
            return False
        return True
    if probe == "Xvfb" and environ.get("DISPLAY"):
        return True  # a display is there already (pytest-xvfb then uses it)
    return shutil.which(probe, path=environ.get("PATH", "")) is not None


def missing(packages: dict[str, str | None] = DEBIAN_PACKAGES, environ=None) -> list[str]:
    """'package (probe)' for each package whose probe is not found."""
    environ = os.environ if environ is None else environ
    return [
        f"{package} ({probe})"
        for package, probe in packages.items()
        if probe is not None and not _present(probe, environ)
    ]


def skip_reason(absent: list[str]) -> str:
    return (
        f"GUI tests skipped: missing {', '.join(absent)}; install the Debian packages "
        "(`bash scripts/test.sh` does, as root or with sudo)"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--packages"]:
        print(" ".join(DEBIAN_PACKAGES))
        sys.exit(0)
    absent = missing()
    if absent:
        print(skip_reason(absent))
        sys.exit(1)
