"""What a driver is asked to run: one task of an allocation, as a TaskSpec.

The allocation document from the cluster holds the group's task specs and
the host ports the scheduler picked; the agent adds this node's id and
address and, for a task with secrets, their values from the secrets
endpoint. The supervisor builds a spec right before a start and drops it
right after, so the secrets live no longer than the start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.drivers.base import DriverError, HostVolume, PortMapping, TaskSpec
from agent.state import AllocRuntime

__all__ = ["SecretsUnavailable", "build_task_spec", "task_secrets"]


class SecretsUnavailable(Exception):
    """The task's secrets could not be fetched now (not a task failure)."""


def task_secrets(doc: Mapping[str, Any], task: Mapping[str, Any]) -> dict[str, str]:
    """The values of this task's secret env vars from the secrets endpoint's
    answer for it (``{"env": {...}}``)."""
    wanted = task.get("secrets") or {}
    source = doc.get("env") or {}
    missing = [k for k in wanted if k not in source]
    if missing:
        raise SecretsUnavailable(f"the secrets endpoint did not return {', '.join(missing)}")
    return {k: str(source[k]) for k in wanted}


def build_task_spec(
    rt: AllocRuntime, name: str, secrets: Mapping[str, str], *, node_id: str, host_ip: str
) -> TaskSpec:
    """Task ``name`` of the allocation ``rt`` as its driver gets it."""
    task = rt.task_spec(name)
    doc = rt.doc
    host_ports: Mapping[str, int] = doc.get("ports") or {}
    ports = []
    for port in task.get("ports") or []:
        host = host_ports.get(port["name"]) or port.get("static")
        if not host:
            raise DriverError(f"port {port['name']!r} has no host port in the allocation")
        ports.append(PortMapping(port["name"], int(host), port.get("to")))
    res = task.get("resources") or {}
    return TaskSpec(
        alloc_id=rt.id,
        job=str(doc.get("job", "")),
        group=str(doc.get("group", "")),
        task=name,
        node=node_id,
        image=task.get("image"),
        command=task.get("command"),
        env=dict(task.get("env") or {}),
        secret_env=dict(secrets),
        ports=tuple(ports),
        user=task.get("user"),
        privileged=bool(task.get("privileged")),
        volumes=tuple(
            HostVolume(v["source"], v["target"], bool(v.get("read_only", True)))
            for v in task.get("volumes") or ()
        ),
        cpu=int(res.get("cpu", 100)),
        memory=int(res.get("memory", 128)),
        labels=dict(task.get("labels") or {}),
        host_ip=host_ip,
        kill_timeout=float(task.get("kill_timeout", 5)),
        job_version=int(doc.get("job_version", 0) or 0),
    )
