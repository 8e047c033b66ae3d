"""The scheduling loop: jobs, nodes and allocations in; plans out.

Read the tables at index N, find the jobs whose inputs changed, run the pure
scheduler for each, propose the plans, wait for index > N. A plan computed
from an old job version is refused by the FSM (stale_plan) and recomputed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from domain.scheduler import ClusterState, Plan, schedule_on
from domain.scheduler.blocked import BlockedJobs, ClusterMark
from raft.replica import CommandRejected, Replica

log = logging.getLogger("heroctld.scheduler")

WATCHED = ("jobs", "nodes", "allocations", "deployments")
MAX_PLACES_PER_COMMAND = 2000


def stagger_until(
    job: dict[str, Any], deployments: list[dict[str, Any]], allocs: Iterable[dict[str, Any]]
) -> int | None:
    """When (ms) the rollout of the job's version may start its next
    replacement, if a group's `update.stagger` pauses it: that long after the
    last replacement of the version turned healthy (`healthy_at`), while the
    version's deployment runs."""
    version = job.get("version")
    running = any(d["version"] == version and d["status"] == "running" for d in deployments)
    staggers = {
        g["name"]: float((g.get("update") or {}).get("stagger") or 0)
        for g in job.get("groups") or ()
    }
    if not running or not any(staggers.values()):
        return None
    times = [
        a["healthy_at"] + int(staggers[a["group"]] * 1000)
        for a in allocs
        if a.get("job_version") == version
        and a.get("previous_alloc")
        and staggers.get(a.get("group"))
        and isinstance(a.get("healthy_at"), int)
    ]
    return max(times, default=None)


def rollout_hold(
    job: dict[str, Any],
    deployments: list[dict[str, Any]],
    now_ms: int = 0,
    allocs: Iterable[dict[str, Any]] = (),
) -> str | None:
    """Why the rolling update of the job's version waits, if it does: its
    deployment is paused, or failed without rolling back (a rollback is a
    newer version, with a deployment of its own), or a group's `stagger`
    pauses it between batches (:func:`stagger_until`)."""
    for deployment in reversed(deployments):
        if deployment["version"] != job.get("version"):
            continue
        if deployment["status"] == "paused":
            return f"deployment {deployment['id']} is paused"
        if deployment["status"] == "failed":
            return f"deployment {deployment['id']} failed: {deployment['status_description']}"
        until = stagger_until(job, [deployment], allocs)
        if until is not None and until > now_ms:
            return "stagger: pausing between batches"
        return None
    return None


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
    known = {k: (stored or EMPTY_STATUS).get(k) for k in EMPTY_STATUS}
    return _status_of(plan) != known


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


async def scheduling_loop(
    replica: Replica, wait: float = 30.0, clock: Callable[[], float] = time.time
) -> None:
    """Schedule the jobs whose inputs changed (the FSM notes them), all of them
    when nodes changed or this server just became leader. A job that runs
    nowhere and could not be placed is skipped until its placement inputs,
    the nodes or the allocations change (domain.scheduler.blocked). A job
    whose rollout a `stagger` pauses is scheduled again when the pause ends."""
    replica.take_changes()  # what happened before we led: covered by the full first pass
    everything, retry = True, set()
    blocked = BlockedJobs()
    staggered: dict[str, int] = {}  # job -> when (ms) its next batch may start
    index = 0
    while True:
        if not everything and not retry:
            timeout = wait
            if staggered:
                timeout = min(wait, max(0.0, min(staggered.values()) / 1000 - clock()) + 0.01)
            index = await replica.wait_for_change(WATCHED, index, timeout)
            now_ms = int(clock() * 1000)
            retry = {n for n, until in staggered.items() if until <= now_ms}
            for name in retry:
                del staggered[name]
        changed, nodes_changed = replica.take_changes()
        with replica.read() as view:
            table = view.jobs
            mark = (view.nodes.index, view.allocs.index)
            if everything or nodes_changed:
                names = sorted(table)
            else:
                names = sorted(
                    n
                    for n in changed | retry
                    if n in table and (n in retry or not blocked.still_blocked(table[n], mark))
                )
            jobs = {n: table[n] for n in names}
            statuses = {n: view.job_status.get(n) for n in names}
            now_ms = int(clock() * 1000)
            holds = {}
            for name in names:
                deployments, allocs = view.deployments.by_job(name), view.allocs.by_job(name)
                holds[name] = rollout_hold(jobs[name], deployments, now_ms, allocs)
                until = stagger_until(jobs[name], deployments, allocs)
                if until is not None and until > now_ms:
                    staggered[name] = until
            nodes = list(view.nodes.values()) if names else []
            allocs = list(view.allocs.values()) if names else []
            index = max(index, *(replica.table_index(t) for t in WATCHED))
            for name in changed - table.keys():
                blocked.forget(name)
        everything, retry = False, set()
        if not names:
            continue
        cluster = ClusterState(nodes, allocs)
        pending: list[tuple[str, Plan]] = []
        seen: ClusterMark | None = mark  # None once the cluster holds this pass's plans
        for name in names:
            had_allocs = bool(cluster.by_job.get(name))
            plan = schedule_on(jobs[name], cluster, commit=True, hold=holds[name])
            blocked.record(jobs[name], plan, had_allocs, seen)
            if plan.places or plan.stops:
                seen = None
            if needs_write(plan, statuses[name]):
                pending.append((name, plan))
        # All plans of one pass leave together: one raft entry, one round trip.
        done = await asyncio.gather(*(_propose(replica, n, p, jobs[n]) for n, p in pending))
        retry = {name for (name, _), accepted in zip(pending, done, strict=True) if not accepted}
