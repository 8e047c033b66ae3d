"""Files the isolation tests try to read from inside a task."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def root_only_file() -> Iterator[Path]:
    """A 0600 root file in a directory anyone may enter, so only the file's own
    mode keeps a task out."""
    folder = Path(tempfile.mkdtemp(prefix="heroctl-root-only-"))
    folder.chmod(0o755)
    secret = folder / "cluster.env"
    secret.write_text("HEROCTL_CLUSTER_KEY=not-for-tasks\n")
    secret.chmod(0o600)
    try:
        yield secret
    finally:
        shutil.rmtree(folder)
