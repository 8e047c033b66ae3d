"""scripts/build-test-image.sh rebuilds the test image when its content
changed (the busybox binary or the script), not merely when the tag is
missing, and does nothing when the content is the same. Built under a tag
of its own from a copy of busybox, removed afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.workloads import docker_unavailable

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build-test-image.sh"
BUSYBOX = Path("/bin/busybox")
_SKIP = docker_unavailable() or (None if BUSYBOX.exists() else "no /bin/busybox")
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]

TAG = f"heroctl-test/busybox-rebuild:{os.getpid()}"


@pytest.fixture
def busybox(tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "busybox"
    shutil.copy2(BUSYBOX, copy)
    try:
        yield copy
    finally:
        subprocess.run(["docker", "image", "rm", "-f", TAG], capture_output=True, check=False)


def build(busybox: Path) -> str:
    env = {**os.environ, "HEROCTL_TEST_IMAGE": TAG, "BUSYBOX": str(busybox)}
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    inspect = ["docker", "image", "inspect", TAG, "--format", "{{.Id}}"]
    return subprocess.run(inspect, capture_output=True, text=True, check=True).stdout.strip()


def test_the_image_is_rebuilt_when_its_content_changes_only(busybox: Path) -> None:
    first = build(busybox)
    assert build(busybox) == first  # same content: nothing rebuilt
    with busybox.open("ab") as f:  # a changed binary (trailing bytes: it still runs)
        f.write(b"\0changed")
    assert build(busybox) != first
