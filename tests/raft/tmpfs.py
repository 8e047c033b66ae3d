"""A small filesystem that fills up: a tmpfs with a size limit (root only).

Unmounted on the way out whatever happens (lazily if a process still holds
it); the tests that need one are skipped where mounting is not allowed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` ("2m") mounted at `path` for the duration."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        if _run("umount", str(path)).returncode != 0:
            _run("umount", "-l", str(path))


def resize(path: Path, size: str) -> None:
    """Give the tmpfs at `path` another size limit (its files stay)."""
    done = _run("mount", "-o", f"remount,size={size}", str(path))
    assert done.returncode == 0, done.stderr
