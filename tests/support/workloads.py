"""What the Docker end-to-end tests need: the busybox test image, built on
demand, and a reason to skip when no Docker engine answers."""

from __future__ import annotations

import subprocess
from pathlib import Path

IMAGE = "heroctl-test/busybox:latest"
ROOT = Path(__file__).resolve().parents[2]


def docker_unavailable() -> str | None:
    """None when a Docker engine answers and IMAGE is there (built if
    missing); otherwise the reason to skip."""
    try:
        subprocess.run(["docker", "info"], check=True, capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"no Docker engine answers `docker info` ({exc})"
    probe = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, timeout=20)
    if probe.returncode != 0:
        built = subprocess.run(
            ["bash", str(ROOT / "scripts/build-test-image.sh")], capture_output=True, timeout=120
        )
        if built.returncode != 0:
            return f"cannot build {IMAGE}: {built.stderr.decode()[-300:]}"
    return None
