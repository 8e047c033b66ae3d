"""Deployment documents: started and cancelled with a job's versions.

Every new version of a service job whose groups changed starts a deployment
(`job.upsert`, in the same command: a version and its deployment are never
apart); the running one of an older version is cancelled. The leader's
deployments controller then drives it (raft.fsm_deployments). Helpers only:
no operation lives here, so raft.fsm_jobs and raft.fsm_deployments both use
them without importing each other.
"""

from __future__ import annotations

import hashlib
from typing import Any

from raft.changes import Changes
from raft.state import State

TABLE = "deployments"
ACTIVE = ("running", "paused", "blocked-on-promotion")
STATUSES = ("running", "paused", "blocked-on-promotion", "successful", "failed", "cancelled")
# As domain.jobspec.groups (raft cannot import domain; tests/raft/
# test_fsm_deployments.py checks they agree): absent keys mean these.
DEFAULT_PROGRESS_DEADLINE = 600
DEFAULT_HEALTHY_DEADLINE = 300
MAX_KEPT_PER_JOB = 10  # finished deployments kept per job, newest first


def deployment_id(job: str, version: int, index: int) -> str:
    """Deterministic (every server applies the same command to the same id)."""
    return hashlib.sha256(f"{job}\0{version}\0{index}".encode()).hexdigest()[:16]


def group_settings(group: dict[str, Any]) -> tuple[int, bool]:
    """(progress deadline in seconds, auto_revert) of a normalized group, as
    domain.jobspec.update_settings computes them."""
    update = group.get("update") or {}
    deadline = update.get("progress_deadline")
    if not isinstance(deadline, int | float):
        healthy = update.get("healthy_deadline", DEFAULT_HEALTHY_DEADLINE)
        deadline = DEFAULT_PROGRESS_DEADLINE
        if isinstance(healthy, int | float) and healthy >= DEFAULT_PROGRESS_DEADLINE:
            deadline = healthy + DEFAULT_PROGRESS_DEADLINE
    return int(deadline), update.get("auto_revert") is True


def put(state: State, changes: Changes, doc: dict[str, Any], index: int) -> None:
    table = state.table(TABLE)
    before = table.get(doc["id"])
    changes.wrote(TABLE, doc["id"], before)
    doc["modify_index"] = index
    table[doc["id"]] = doc
    state.index_deployment(doc)
    state.touch(TABLE, index)


def drop(state: State, changes: Changes, doc: dict[str, Any], index: int) -> None:
    table = state.table(TABLE)
    changes.wrote(TABLE, doc["id"], table.pop(doc["id"]))
    state.unindex_deployment(doc)
    state.touch(TABLE, index)


def cancel_active(
    state: State, changes: Changes, job: str, reason: str, ts: int, index: int
) -> None:
    for doc in state.deployments_of(job):
        if doc["status"] in ACTIVE:
            put(
                state,
                changes,
                dict(doc, status="cancelled", status_description=reason, modify_time=ts),
                index,
            )


def _changes_allocations(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    if old is None or old.get("stop"):
        return True
    return (old.get("groups") or []) != (new.get("groups") or [])


def start(
    state: State,
    changes: Changes,
    old: dict[str, Any] | None,
    job: dict[str, Any],
    ts: int,
    index: int,
) -> str | None:
    """Cancel the job's running deployment and start the new version's, when
    the version changes allocations; returns the new deployment's id."""
    name, version = job["name"], job["version"]
    cancel_active(state, changes, name, f"superseded by version {version}", ts, index)
    if job.get("type", "service") != "service" or job.get("stop"):
        return None
    if not _changes_allocations(old, job):
        return None
    groups: dict[str, Any] = {}
    deadline, auto_revert, strategy = 0, False, "rolling"
    for group in job.get("groups") or ():
        group_deadline, group_revert = group_settings(group)
        deadline = max(deadline, group_deadline)
        auto_revert = auto_revert or group_revert
        # the canaries are set up by the controller's first pass
        # (domain.scheduler.deployment.deployment_setup)
        group_strategy = (group.get("update") or {}).get("strategy", "rolling")
        strategy = group_strategy if group_strategy != "rolling" else strategy
        groups[group["name"]] = {
            "desired": group.get("count", 1),
            "placed": 0,
            "healthy": 0,
            "unhealthy": 0,
            "auto_revert": group_revert,
            "progress_deadline": group_deadline,
        }
    doc = {
        "id": deployment_id(name, version, index),
        "job": name,
        "version": version,
        "strategy": strategy,
        "status": "running",
        "status_description": "deployment is running",
        "groups": groups,
        "auto_revert": auto_revert,
        "progress_deadline": deadline,
        "require_progress_by": ts + deadline * 1000,
        "create_index": index,
        "create_time": ts,
        "modify_time": ts,
    }
    put(state, changes, doc, index)
    finished = [d for d in state.deployments_of(name) if d["status"] not in ACTIVE]
    finished.sort(key=lambda d: d["create_index"], reverse=True)
    for old_doc in finished[MAX_KEPT_PER_JOB:]:
        drop(state, changes, old_doc, index)
    return doc["id"]


def forget_job(state: State, changes: Changes, job: str, index: int) -> None:
    """A deleted job's deployments go with it."""
    for doc in state.deployments_of(job):
        drop(state, changes, doc, index)
