"""What a driver is asked to run: one task of an allocation, as a TaskSpec.

The allocation document from the cluster holds the group's task specs and
the host ports the scheduler picked; the agent adds this node's id and
address and, for a task with secrets or a private registry's credentials,
their values from the secrets endpoint. The supervisor builds a spec right
before a start and drops it right after, so the secrets live no longer than
the start. What a driver says meanwhile (an image's pull) reaches the
allocation's events through :func:`driver_events`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from agent.drivers.base import DriverError, HostVolume, PortMapping, RegistryAuth, TaskSpec
from agent.state import AllocRuntime

__all__ = [
    "SecretsUnavailable",
    "build_task_spec",
    "driver_events",
    "needs_secrets",
    "registry_credentials",
    "start_secrets",
    "task_secrets",
]


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


def needs_secrets(task: Mapping[str, Any]) -> bool:
    """Whether starting ``task`` needs the secrets endpoint: secret env
    vars, or a private registry's password."""
    return bool(task.get("secrets") or task.get("registry_auth"))


def registry_credentials(doc: Mapping[str, Any], task: Mapping[str, Any]) -> RegistryAuth | None:
    """The task's registry credentials from the secrets endpoint's answer
    for it (``{"registry_auth": {"username", "password"}}``); None when the
    task has no ``registry_auth``."""
    if not task.get("registry_auth"):
        return None
    auth = doc.get("registry_auth")
    if not isinstance(auth, Mapping) or not isinstance(auth.get("password"), str):
        raise SecretsUnavailable("the secrets endpoint did not return the registry password")
    return RegistryAuth(str(auth.get("username") or ""), auth["password"])


async def start_secrets(
    fetch: Callable[[str, str], Awaitable[Mapping[str, Any]]],
    alloc_id: str,
    name: str,
    task: Mapping[str, Any],
) -> tuple[dict[str, str], RegistryAuth | None]:
    """What a start of task ``name`` needs from the secrets endpoint (``fetch``):
    its secret env vars and its registry credentials (none when it references
    neither). SecretsUnavailable when they cannot be had now."""
    if not needs_secrets(task):
        return {}, None
    try:
        fetched = await fetch(alloc_id, name)
        return task_secrets(fetched, task), registry_credentials(fetched, task)
    except SecretsUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - the API client's errors, unreachable...
        raise SecretsUnavailable(f"cannot fetch the task's secrets: {exc}") from exc


def driver_events(
    rt: AllocRuntime,
    task: str,
    clock: Callable[[], float],
    wake: Callable[[], None],
) -> Callable[[str, str], None]:
    """An event sink for a driver's thread (``TaskSpec.on_event``): each
    event joins allocation ``rt``'s timeline on the calling event loop, and
    ``wake`` makes the agent report it while the start goes on."""
    loop = asyncio.get_running_loop()

    def record(kind: str, message: str) -> None:
        rt.event(clock(), kind, message, task)
        wake()

    def sink(kind: str, message: str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the agent stops
            loop.call_soon_threadsafe(record, kind, message)

    return sink


def build_task_spec(
    rt: AllocRuntime,
    name: str,
    secrets: Mapping[str, str],
    *,
    node_id: str,
    host_ip: str,
    registry_auth: RegistryAuth | None = None,
    on_event: Callable[[str, str], None] | None = None,
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
        pull=str(task.get("pull") or "missing"),
        registry_auth=registry_auth,
        on_event=on_event,
    )
