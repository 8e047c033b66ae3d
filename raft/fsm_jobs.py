"""FSM operations on jobs: every submit is a new version; check-and-set.

A scale (`job.scale`) is a submit too: the stored job with one group's
count changed goes through :func:`job_upsert`, so it is a new version that
the version history, the events and the scheduler see like any other.
"""

from __future__ import annotations

from typing import Any

from raft import deployment_docs
from raft.changes import Changes
from raft.fsm_allocs import stop_job_allocs, update_in_place
from raft.fsm_ingress import job_claim_conflict
from raft.fsm_results import fail, ok
from raft.packing import pack, unpack
from raft.state import State

MAX_VERSIONS = 10  # current + 9 previous
# The largest group count, as domain.jobspec.groups.MAX_COUNT (raft cannot
# import domain; tests/raft/test_fsm_job_scale.py checks they agree).
MAX_GROUP_COUNT = 100_000


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
        stable=False,
    )
    changes.wrote("jobs", name, existing)
    jobs[name] = doc
    state.changed_jobs.add(name)
    started = deployment_docs.start(state, changes, existing, doc, cmd.get("ts", 0), index)
    if started is None and existing is not None and existing.get("stable") is True:
        doc["stable"] = True  # the same allocations as a stable version: stable too
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
    return ok(job=doc, created=existing is None, deployment=started)


def scale_count_refusal(count: Any) -> dict[str, Any] | None:
    """Why ``count`` cannot be a group's count, or None (the API asks too, so a
    bad request is refused before it costs a raft entry)."""
    if count is None:
        return fail(400, "missing_field", "count: is required")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_GROUP_COUNT:
        return fail(400, "invalid_field", f"count: must be an integer from 0 to {MAX_GROUP_COUNT}")
    return None


def scaled_group(job: dict[str, Any], group: Any) -> dict[str, Any]:
    """The group of ``job`` a scale names (None: the job's only group), or a
    refusal (``ok`` False) that names the field ``group``."""
    groups = job.get("groups") or []
    if group is None and len(groups) == 1:
        return groups[0]
    names = ", ".join(str(g.get("name")) for g in groups) or "none"
    if group is None:
        return fail(400, "missing_field", f"group: is required (the job's groups: {names})")
    found = next((g for g in groups if g.get("name") == group), None)
    if found is None:
        return fail(
            400,
            "invalid_field",
            f"group: job '{job.get('name')}' has no group '{group}' (its groups: {names})",
        )
    return found


def scaled(group: dict[str, Any], count: int) -> dict[str, Any]:
    """``group`` with ``count`` replicas, its `update.canary` kept a valid spec:
    a blue-green group that ran its whole set as the new one still does, and a
    canary count is at most ``count`` (and at least 1 while anything runs), so
    the stored job can be submitted again and a rollout never places more."""
    update = group.get("update") or {}
    canary = update.get("canary")
    if not isinstance(canary, int) or isinstance(canary, bool):
        return dict(group, count=count)
    if update.get("strategy") == "blue-green" and canary == group.get("count", 1):
        canary = count
    canary = min(canary, count) if count else 0
    return dict(group, count=count, update=dict(update, canary=max(canary, 1 if count else 0)))


def job_scale(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    """One group's count set to ``count`` (``group`` None: the job's only group).

    Checked here, in the log's order, as well as by the API: the job and the
    group must exist when the command applies, whatever raced it. ``cas``
    is the job_modify_index the caller expects, as for a submit.
    """
    name = cmd.get("name")
    existing = state.table("jobs").get(name)
    if existing is None:
        return fail(404, "job_not_found", f"job '{name}' does not exist")
    count = cmd.get("count")
    refused = scale_count_refusal(count)
    if refused is not None:
        return refused
    target = scaled_group(existing, cmd.get("group"))
    if target.get("ok") is False:
        return target
    groups = [scaled(g, count) if g is target else g for g in existing.get("groups") or []]
    # The stored document is a valid spec: job_upsert sets the fields the server owns again.
    upsert = {"job": dict(existing, groups=groups), "cas": cmd.get("cas"), "ts": cmd.get("ts", 0)}
    result = job_upsert(state, upsert, index, changes)
    if result.get("ok"):
        result.update(group=target["name"], previous_count=target.get("count", 1), count=count)
    return result


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
    deployment_docs.forget_job(state, changes, name, index)
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
