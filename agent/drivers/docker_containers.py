"""How a task maps onto a Docker container, and what the engine says back.

A container's name is derived from the allocation id and task
(``heroctl-<task>-<alloc>``), so a second start of the same task finds the
first instead of making a duplicate. Its labels (``heroctl.alloc_id``,
``heroctl.job``, ``heroctl.group``, ``heroctl.task``, ``heroctl.node``, the
job version, kill timeout and host ports) carry everything the agent needs
to adopt it after a restart.

The driver reads a container two ways: inspected (one container, every
detail) and listed (one API call for all of this node's, with less). Both
answers become a :class:`TaskState` here, from the same labels and the
same mapping of engine states, so the two agree.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from agent.drivers.base import CREATED, EXITED, RUNNING, UNKNOWN, TaskSpec, TaskState

__all__ = [
    "container_hostname",
    "container_name",
    "explain",
    "inspected_state",
    "listed_state",
    "ports_label",
]

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_EXITED_STATUS = re.compile(r"Exited \((-?\d+)\)")


def container_name(alloc_id: str, task: str) -> str:
    return _NAME_UNSAFE.sub("_", f"heroctl-{task}-{alloc_id}")


def container_hostname(task: str) -> str | None:
    return _NAME_UNSAFE.sub("-", task)[:63] or None


def ports_label(spec: TaskSpec) -> str:
    return ",".join(f"{p.name}={p.host_port}" for p in spec.ports)


def _ports_from_label(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in (text or "").split(","):
        name, _, port = item.partition("=")
        if name and port.isdigit():
            out[name] = int(port)
    return out


def _label_fields(labels: dict[str, str]) -> dict[str, Any]:
    """What a container's heroctl labels say about its task (inspect and list agree)."""
    return {
        "alloc_id": labels.get("heroctl.alloc_id", ""),
        "task": labels.get("heroctl.task", ""),
        "job": labels.get("heroctl.job", ""),
        "group": labels.get("heroctl.group", ""),
        "node": labels.get("heroctl.node", ""),
        "job_version": int(labels.get("heroctl.job_version", "0") or 0),
        "ports": _ports_from_label(labels.get("heroctl.ports")),
        "labels": dict(labels),
    }


def _parse_time(value: str | None) -> float | None:
    """Docker's RFC 3339 timestamps (nanoseconds, 'Z') to unix seconds."""
    if not value or value.startswith("0001-01-01"):
        return None
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", value)
    if not match:
        return None
    base, frac, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    stamp = datetime.fromisoformat(base + zone).timestamp()
    return stamp + (float("0" + frac[:10]) if frac else 0.0)


def _state_of(status: str) -> str:
    """The engine's container status as a task state."""
    if status in ("running", "paused", "restarting"):
        return RUNNING
    if status == "created":
        return CREATED
    if status in ("exited", "dead"):
        return EXITED
    return UNKNOWN


def inspected_state(attrs: dict[str, Any], driver: str) -> TaskState:
    """A task from a container's full attributes (``inspect``)."""
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    st = attrs.get("State") or {}
    state = RUNNING if st.get("Running") else _state_of(st.get("Status", ""))
    return TaskState(
        **_label_fields(labels),
        driver=driver,
        handle=attrs.get("Id", ""),
        state=state,
        exit_code=st.get("ExitCode") if state == EXITED else None,
        started_at=_parse_time(st.get("StartedAt")),
        finished_at=_parse_time(st.get("FinishedAt")) if state == EXITED else None,
        oom_killed=bool(st.get("OOMKilled")),
        error=st.get("Error") or "",
    )


def listed_state(row: dict[str, Any], driver: str) -> TaskState:
    """A task from a row of the container list: ``started_at`` is the
    container's creation time, ``finished_at`` is unknown."""
    labels = row.get("Labels") or {}
    state = _state_of(row.get("State", ""))
    code = None
    if state == EXITED:
        match = _EXITED_STATUS.search(row.get("Status", ""))
        code = int(match.group(1)) if match else None
    return TaskState(
        **_label_fields(labels),
        driver=driver,
        handle=row.get("Id", ""),
        state=state,
        exit_code=code,
        started_at=float(row["Created"]) if row.get("Created") else None,
    )


def explain(exc: Exception) -> str:
    """The engine's own explanation of an API error, when it gave one."""
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)
