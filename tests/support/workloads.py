"""What the Docker end-to-end tests need: the busybox test image, built on
demand, a reason to skip when no Docker engine answers, and a job that prints."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

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


PRINTER = "i=0; while true; do echo line $i; echo err $i >&2; i=$((i+1)); sleep 0.05; done"


def printer_job(name: str, count: int) -> dict[str, Any]:
    """`count` replicas on distinct nodes, each printing a numbered line to
    stdout and stderr every 50 ms."""
    return {
        "name": name,
        "type": "service",
        "groups": [
            {
                "name": "g",
                "count": count,
                "constraints": [{"operator": "distinct_hosts"}],
                "restart": {"attempts": 3, "interval": "5m", "delay": "1s"},
                "tasks": [
                    {
                        "name": "main",
                        "driver": "docker",
                        "image": IMAGE,
                        "command": ["sh", "-c", PRINTER],
                        "resources": {"cpu": 100, "memory": 32},
                        "kill_timeout": "1s",
                    }
                ],
            }
        ],
    }
