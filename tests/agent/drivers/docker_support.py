"""What the docker driver tests share: whether an engine answers, and a task."""

from __future__ import annotations

import shutil
import subprocess
from functools import partial

import pytest

from agent.drivers.base import TaskSpec
from tests.support.drivers import poll, task_spec
from tests.support.workloads import IMAGE


def _docker_info() -> str | None:
    """None when the engine answers, else why not."""
    if shutil.which("docker") is None:
        return "docker CLI is not installed"
    try:
        proc = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return "`docker info` timed out"
    if proc.returncode != 0:
        return f"`docker info` failed: {(proc.stderr or proc.stdout).strip()[:300]}"
    return None


_WHY_NOT = _docker_info()
needs_docker = pytest.mark.skipif(_WHY_NOT is not None, reason=f"no Docker engine: {_WHY_NOT}")


def spec(node: str, command: list[str] | None, **kw: object) -> TaskSpec:
    fields: dict[str, object] = {
        "node": node,
        "image": IMAGE,
        "command": command,
        "cpu": 250,
        "memory": 64,
        "kill_timeout": 3.0,
    }
    fields.update(kw)
    return task_spec(**fields)


wait_for = partial(poll, timeout=10.0, step=0.1)
