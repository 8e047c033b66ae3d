"""FSM operations on jobs: every submit is a new version; check-and-set."""

from __future__ import annotations

from typing import Any

from raft.changes import Changes
from raft.fsm_allocs import stop_job_allocs, update_in_place
from raft.fsm_ingress import job_claim_conflict
from raft.fsm_results import fail, ok
from raft.packing import pack, unpack
from raft.state import State

MAX_VERSIONS = 10  # current + 9 previous


def job_upsert(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    spec = cmd.get("job")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        return fail(400, "invalid_job", "job must be an object with a name")
    name = spec["name"]
    jobs = state.table("jobs")
    existing = jobs.get(name)
    cas = cmd.get("cas")
    if cas is not None:
        current = existing["job_modify_index"] if existing else 0
        if cas != current:
            return fail(
                409,
                "conflict",
                f"job '{name}' job_modify_index is {current}, request expected {cas}",
            )
    refused = job_claim_conflict(state, spec)  # a host+path someone else serves
    if refused is not None:
        return refused
    doc = dict(spec)
    doc.update(
        version=existing["version"] + 1 if existing else 0,
        create_index=existing["create_index"] if existing else index,
        modify_index=index,
        job_modify_index=index,
        submit_time=cmd.get("ts", 0),
        status="pending",
    )
    changes.wrote("jobs", name, existing)
    jobs[name] = doc
    state.changed_jobs.add(name)
    if existing:
        update_in_place(state, changes, existing, doc, cmd.get("ts", 0), index)
        versions = state.table("job_versions")
        # Old versions are kept packed: a few hundred bytes each instead of
        # kilobytes of dicts (10,000 jobs x 10 versions must fit in memory).
        packed = pack(existing)
        history = [*versions.get(name, ()), packed][-(MAX_VERSIONS - 1) :]
        versions[name] = history
        state.touch("job_versions", index)
    state.touch("jobs", index)
    return ok(job=doc, created=existing is None)


def job_delete(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    name = cmd.get("name")
    jobs = state.table("jobs")
    if name not in jobs:
        return fail(404, "job_not_found", f"job '{name}' does not exist")
    changes.wrote("jobs", name, jobs.pop(name))
    state.changed_jobs.add(name)
    state.table("job_versions").pop(name, None)
    status = state.table("job_status").pop(name, None)
    if status is not None:
        changes.wrote("job_status", name, status)
        state.touch("job_status", index)
    stop_job_allocs(state, changes, name, "job deleted", cmd.get("ts", 0), index)
    state.touch("jobs", index)
    state.touch("job_versions", index)
    return ok(name=name)


def job_versions(state: State, name: str) -> list[dict[str, Any]]:
    """Every stored version of a job, newest first (a read helper)."""
    current = state.table("jobs").get(name)
    if current is None:
        return []
    history = state.table("job_versions").get(name, [])
    return [current, *(unpack(v) for v in reversed(history))]
