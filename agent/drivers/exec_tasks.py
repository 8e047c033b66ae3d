"""The exec driver's record of its tasks, and the state file that outlives the agent.

What the driver knows of a task lives in memory plus a small state file
(``<state_dir>/exec-tasks.json``: pids, process start ticks, labels, ports,
times; no env, no command line), so after an agent restart the driver finds
the processes still running and adopts them. The file is replaced whole
(written aside, synced, renamed); a torn or foreign one is set aside as
``exec-tasks.corrupt`` for a human, and the driver starts empty.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["STATE_FILE", "ExecTask", "load_tasks", "save_tasks"]

STATE_FILE = "exec-tasks.json"


@dataclass
class ExecTask:
    alloc_id: str
    task: str
    job: str
    group: str
    node: str
    job_version: int
    pid: int
    start_ticks: int | None
    started_at: float
    kill_timeout: float
    log_path: str
    ports: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    finished_at: float | None = None
    exit_code: int | None = None
    user: str = ""  # who it runs as ("": recorded before users, i.e. the agent's)
    cgroup: str | None = None  # its cgroup until it ended and was cleaned up
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        """What goes to the state file: no env, no command line."""
        return {
            "alloc_id": self.alloc_id,
            "task": self.task,
            "job": self.job,
            "group": self.group,
            "node": self.node,
            "job_version": self.job_version,
            "pid": self.pid,
            "start_ticks": self.start_ticks,
            "started_at": self.started_at,
            "kill_timeout": self.kill_timeout,
            "log_path": self.log_path,
            "ports": self.ports,
            "labels": self.labels,
            "finished_at": self.finished_at,
            "exit_code": self.exit_code,
            "user": self.user,
            "cgroup": self.cgroup,
        }


def load_tasks(path: Path, node: str) -> dict[tuple[str, str], ExecTask]:
    """The tasks of ``node`` recorded in the state file at ``path``."""
    tasks: dict[tuple[str, str], ExecTask] = {}
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return tasks
    except (OSError, ValueError):
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("tasks", []), list):
        # A torn or foreign file (valid JSON of another shape included):
        # keep it for a human, start empty.
        with contextlib.suppress(OSError):
            path.replace(path.with_suffix(".corrupt"))
        return tasks
    for rec in doc.get("tasks", []):
        if not isinstance(rec, dict):
            continue
        try:
            task = ExecTask(
                alloc_id=str(rec["alloc_id"]),
                task=str(rec["task"]),
                job=str(rec.get("job", "")),
                group=str(rec.get("group", "")),
                node=str(rec.get("node", node)),
                job_version=int(rec.get("job_version", 0)),
                pid=int(rec["pid"]),
                start_ticks=rec.get("start_ticks"),
                started_at=float(rec.get("started_at", 0.0)),
                kill_timeout=float(rec.get("kill_timeout", 5.0)),
                log_path=str(rec["log_path"]),
                ports={str(k): int(v) for k, v in (rec.get("ports") or {}).items()},
                labels={str(k): str(v) for k, v in (rec.get("labels") or {}).items()},
                finished_at=rec.get("finished_at"),
                exit_code=rec.get("exit_code"),
                user=str(rec.get("user") or ""),
                cgroup=rec.get("cgroup"),
            )
        except (KeyError, TypeError, ValueError, AttributeError):  # ports/labels not objects
            continue
        if task.node == node:
            tasks[(task.alloc_id, task.task)] = task
    return tasks


def save_tasks(path: Path, node: str, tasks: Iterable[ExecTask]) -> None:
    """Replace the state file at ``path`` with ``tasks`` (never half written)."""
    doc = {
        "version": 1,
        "node": node,
        "tasks": [t.record() for t in tasks],
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
