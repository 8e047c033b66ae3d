"""A job plan: what submitting a spec would change, computed without changing
anything (``POST /v1/jobs/:name/plan``, ``heroctl job plan``).

Two parts, both pure:

* the **diff** of the spec against the job's current version
  (:func:`domain.job_diff.job_diff`);
* a **dry run of the scheduler**: the same :func:`domain.scheduler.schedule`
  the leader runs, on the nodes and allocations the caller read, for the job
  as the submit would store it (its next version). What the FSM does at the
  submit itself is mirrored first: the live allocations of a group whose new
  version changes nothing but ``count`` move to the new version in place
  (:func:`raft.fsm_allocs.moves_in_place`, the rule
  :func:`raft.fsm_allocs.update_in_place` applies), so the scheduler sees
  what it would see after the write.

Per group the plan counts, as Nomad's plan annotations do:

* ``place``: new allocations (a new group, scaling up, replacing a lost one);
* ``stop``: allocations stopped without a replacement (scaling down, a group
  removed);
* ``in_place_update``: allocations that move to the new version and keep
  running (nothing restarts);
* ``destructive_update``: allocations replaced by a new one because their
  group changed (stopped and placed again), now or later in the rolling
  update; ``deferred`` says how many of them wait for ``update.max_parallel``;
* ``migrate``: replacements of allocations on draining nodes;
* ``ignore``: allocations left as they are;
* ``unplaced``: allocations the scheduler could not place, with the reasons in
  ``failures``.

``changes`` follows ``nomad job plan``'s exit code: true when the spec
differs from the current version and the plan would create or destroy
allocations (place, stop, destructive update, migrate, or an allocation that
cannot be placed).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from domain.job_diff import NONE, job_diff
from domain.scheduler import schedule
from domain.scheduler.model import LIVE_STATUSES, Plan
from raft.fsm_allocs import moves_in_place

__all__ = ["COUNTS", "plan_job", "would_change"]

COUNTS = (
    "place",
    "stop",
    "in_place_update",
    "destructive_update",
    "migrate",
    "ignore",
    "deferred",
    "unplaced",
)
# What a plan creates or destroys (``nomad job plan`` exits 1 when any is > 0).
CHANGING = ("place", "stop", "destructive_update", "migrate", "unplaced")


def _next_version(current: Mapping[str, Any] | None) -> int:
    return int(current["version"]) + 1 if current is not None else 0


def _as_submitted(
    current: Mapping[str, Any] | None,
    spec: Mapping[str, Any],
    allocs: Iterable[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], set[str]]:
    """The allocations as the submit would leave them, and the ids it moves in place."""
    name = spec["name"]
    if current is None:
        return list(allocs), set()
    old_groups = {g["name"]: g for g in current.get("groups") or ()}
    new_groups = {g["name"]: g for g in spec.get("groups") or ()}
    version = _next_version(current)
    out: list[Mapping[str, Any]] = []
    moved: set[str] = set()
    for alloc in allocs:
        if (
            alloc.get("job") == name
            and alloc.get("desired_status") == "run"
            and alloc.get("job_version") == current.get("version")
            and alloc.get("group") in new_groups
            and moves_in_place(old_groups.get(alloc["group"]), new_groups[alloc["group"]])
        ):
            alloc = dict(alloc, job_version=version)
            moved.add(alloc["id"])
        out.append(alloc)
    return out, moved


def _group_counts(
    spec: Mapping[str, Any],
    current: Mapping[str, Any] | None,
    plan: Plan,
    mine: list[Mapping[str, Any]],
    moved: set[str],
    spec_changed: bool,
) -> dict[str, dict[str, int]]:
    names = [g["name"] for g in spec.get("groups") or ()]
    names += [g["name"] for g in (current or {}).get("groups") or () if g["name"] not in names]
    counts = {n: dict.fromkeys(COUNTS, 0) for n in names}

    def bump(group: str, key: str, n: int = 1) -> None:
        counts.setdefault(group, dict.fromkeys(COUNTS, 0))[key] += n

    replaced = {p.previous for p in plan.places if p.reason == "update" and p.previous}
    stopped = {s.alloc_id for s in plan.stops}
    for p in plan.places:
        if p.reason == "update":
            bump(p.group, "destructive_update")
        elif p.reason == "migrate":
            bump(p.group, "migrate")
        else:
            bump(p.group, "place")
    for s in plan.stops:
        if s.alloc_id not in replaced:
            bump(s.group, "stop")
    version = plan.job_version
    service = spec.get("type", "service") != "batch"
    for alloc in mine:
        if alloc["id"] in stopped or alloc.get("desired_status") != "run":
            continue
        if alloc.get("status") not in LIVE_STATUSES:
            continue
        group = alloc["group"]
        if alloc.get("job_version") == version or not service:
            in_place = alloc["id"] in moved and spec_changed
            bump(group, "in_place_update" if in_place else "ignore")
        else:  # an older version: replaced later in the rolling update
            bump(group, "destructive_update")
    for group, n in plan.deferred.items():
        bump(group, "deferred", n)
    for failure in plan.failures:
        bump(failure.group, "unplaced", failure.count)
    return counts


def would_change(diff_type: str, groups: Mapping[str, Mapping[str, int]]) -> bool:
    """``nomad job plan``'s rule: a changed spec whose plan creates or destroys allocations."""
    if diff_type == NONE:
        return False
    return any(c.get(key, 0) > 0 for c in groups.values() for key in CHANGING)


def plan_job(
    current: Mapping[str, Any] | None,
    spec: Mapping[str, Any],
    nodes: Iterable[Mapping[str, Any]],
    allocs: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """The plan of submitting ``spec`` (normalized) over ``current`` (the stored
    job, None when new), on the given nodes and every allocation of the cluster."""
    name = spec["name"]
    version = _next_version(current)
    diff = job_diff(current, spec)
    # Other jobs' allocations matter only while they hold resources.
    relevant = (
        a
        for a in allocs
        if a.get("job") == name
        or (a.get("desired_status") == "run" and a.get("status") in LIVE_STATUSES)
    )
    as_submitted, moved = _as_submitted(current, spec, relevant)
    ids = (f"planned-{n}" for n in itertools.count())
    plan = schedule(dict(spec, version=version), nodes, as_submitted, new_id=lambda: next(ids))
    mine = [a for a in as_submitted if a.get("job") == name]
    groups = _group_counts(spec, current, plan, mine, moved, diff["type"] != NONE)
    return {
        "job": name,
        "job_modify_index": current.get("job_modify_index", 0) if current is not None else 0,
        "current_version": current.get("version") if current is not None else None,
        "version": version,
        "diff": diff,
        "groups": groups,
        "places": [
            {
                "group": p.group,
                "name": p.name,
                "node": p.node_id,
                "node_name": p.node_name,
                "reason": p.reason,
                "previous_alloc": p.previous,
            }
            for p in plan.places
        ],
        "stops": [
            {"id": s.alloc_id, "group": s.group, "node": s.node_id, "reason": s.reason}
            for s in plan.stops
        ],
        "failures": [f.to_dict() for f in plan.failures],
        "deferred": dict(plan.deferred),
        "halted": dict(plan.halted),
        "changes": would_change(diff["type"], groups),
    }
