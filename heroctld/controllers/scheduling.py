"""The scheduling loop: jobs, nodes and allocations in; plans out.

Read the tables at index N, find the jobs whose inputs changed, run the pure
scheduler for each, propose the plans, wait for index > N. A plan computed
from an old job version is refused by the FSM (stale_plan) and recomputed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from heroctld.scheduler import ClusterState, Plan, schedule_on
from raft.replica import CommandRejected, Replica

log = logging.getLogger("heroctld.scheduler")

WATCHED = ("jobs", "nodes", "allocations")
MAX_PLACES_PER_COMMAND = 2000


def _fingerprints(
    jobs: dict[str, Any], allocs: dict[str, Any], nodes_index: int
) -> dict[str, tuple]:
    """Per job: what the scheduler's answer depends on."""
    latest: dict[str, int] = {}
    for a in allocs.values():
        if a["modify_index"] > latest.get(a["job"], -1):
            latest[a["job"]] = a["modify_index"]
    return {
        name: (job["modify_index"], latest.get(name, 0), nodes_index) for name, job in jobs.items()
    }


def plan_commands(plan: Plan, job: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan as plan.apply commands (large plans in several chunks)."""
    base = {
        "job": plan.job,
        "job_version": plan.job_version,
        "job_modify_index": job["job_modify_index"],
        "failures": [f.to_dict() for f in plan.failures],
        "deferred": dict(plan.deferred),
        "halted": dict(plan.halted),
    }
    places = [p.to_dict() for p in plan.places]
    stops = [s.to_dict() for s in plan.stops]
    chunks = [
        places[i : i + MAX_PLACES_PER_COMMAND]
        for i in range(0, len(places), MAX_PLACES_PER_COMMAND)
    ] or [[]]
    return [
        dict(base, places=chunk, stops=stops if i == 0 else []) for i, chunk in enumerate(chunks)
    ]


def _status_of(plan: Plan) -> dict[str, Any]:
    return {
        "failures": [f.to_dict() for f in plan.failures],
        "deferred": dict(plan.deferred),
        "halted": dict(plan.halted),
    }


EMPTY_STATUS = {"failures": [], "deferred": {}, "halted": {}}


def needs_write(plan: Plan, stored: dict[str, Any] | None) -> bool:
    """A plan that changes nothing and reports what is already stored is not written."""
    if not plan.empty:
        return True
    status = _status_of(plan)
    known = {k: (stored or EMPTY_STATUS).get(k) for k in EMPTY_STATUS}
    if status != known:
        return True
    # Unchanged failures of a new version: say they now belong to that version.
    return status != EMPTY_STATUS and (stored or {}).get("job_version") != plan.job_version


async def _propose(replica: Replica, name: str, plan: Plan, job: dict[str, Any]) -> bool:
    try:
        for cmd in plan_commands(plan, job):
            await replica.write("plan.apply", **cmd)
    except CommandRejected as e:
        log.info("plan for %s refused (%s); will recompute", name, e.code)
        return False
    if plan.places or plan.stops:
        log.info(
            "job %s v%s: %d placed, %d stopped%s",
            name,
            plan.job_version,
            len(plan.places),
            len(plan.stops),
            f", {len(plan.failures)} groups unplaceable" if plan.failures else "",
        )
    return True


async def scheduling_loop(replica: Replica, wait: float = 30.0) -> None:
    seen: dict[str, tuple] = {}
    index = 0
    while True:
        index = await replica.wait_for_change(WATCHED, index, wait)
        with replica.state.read() as s:
            jobs = dict(s.table("jobs"))
            nodes = list(s.table("nodes").values())
            allocs = dict(s.table("allocations"))
            statuses = dict(s.table("job_status"))
            nodes_index = s.table_index["nodes"]
        prints = _fingerprints(jobs, allocs, nodes_index)
        dirty = [name for name, fp in prints.items() if seen.get(name) != fp]
        seen = {name: fp for name, fp in prints.items() if name in seen and name not in dirty}
        if not dirty:
            continue
        cluster = ClusterState(nodes, allocs.values())
        pending: list[tuple[str, Plan]] = []
        for name in sorted(dirty):
            plan = schedule_on(jobs[name], cluster, commit=True)
            if needs_write(plan, statuses.get(name)):
                pending.append((name, plan))
            else:
                seen[name] = prints[name]
        # All plans of one pass leave together: one raft entry, one round trip.
        done = await asyncio.gather(*(_propose(replica, n, p, jobs[n]) for n, p in pending))
        for (name, _), accepted in zip(pending, done, strict=True):
            if accepted:
                seen[name] = prints[name]
