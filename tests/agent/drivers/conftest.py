"""Fixtures of the docker driver tests: this module's node, the test image
(built here, offline, when missing)."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from tests.support.workloads import IMAGE, ROOT


@pytest.fixture(scope="module")
def node() -> str:
    return f"test-node-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def image() -> str:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-test-image.sh")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"building {IMAGE} failed: {proc.stderr}"
    return IMAGE
