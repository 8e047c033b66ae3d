from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster

# Fixtures shared by tests in several folders.
pytest_plugins = ["tests.support.files"]


@pytest.fixture
def cluster3(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 3).start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def single(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 1).start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def module_single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One single-node cluster shared by a module's tests (they must not collide)."""
    c = Cluster(tmp_path_factory.mktemp("single"), 1).start()
    try:
        yield c
    finally:
        c.stop()
