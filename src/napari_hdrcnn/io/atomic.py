"""Atomic output, the project's one mechanism for writing a file whole or not at all: a temp
file in the destination folder, renamed over the destination when the write succeeded (weights,
images, videos, evaluation tables, training logs and the widget's settings all go through it)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def new_file_mode() -> int:
    """The mode an ordinary new file gets (mkstemp would leave 0600). Read from /proc rather
    than os.umask(), which would briefly change the umask of every thread."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path in `path`'s folder; rename it over `path` if the block succeeds,
    delete it if the block raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        try:
            os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else new_file_mode())
        except OSError:  # some file systems have no modes; the content matters more
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call `write(tmp_path)` then rename over `path`: the file appears whole or not at all."""
    with atomic_output(path) as tmp:
        write(str(tmp))


__all__ = ["atomic_output", "atomic_write", "new_file_mode"]
