"""The deployments controller: drives every running deployment to its end.

Leader-only. Each pass reads the running, paused and blocked-on-promotion
deployments, their jobs and the jobs' allocations from the replicated state,
asks the pure :func:`domain.scheduler.deployment.next_step` what follows, and
proposes it: `deployment.progress` (the counts seen, and once the strategy
settings of the job), `deployment.status` (blocked-on-promotion, successful,
cancelled, or failed, which rolls back in the FSM when the job asks for
auto_revert) and `deployment.promote` (auto_promote).
It keeps nothing in memory, so a new leader resumes every deployment where
the state says it is. It wakes when deployments, allocations or jobs change,
or when the nearest progress deadline passes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from domain.scheduler.deployment import BLOCKED, DeploymentStep, next_step
from raft.replica import CommandRejected, NoLeader, Replica

log = logging.getLogger("heroctld.deployments")

WATCHED = ("deployments", "allocations", "jobs")


async def _propose(replica: Replica, deployment: dict[str, Any], step: DeploymentStep) -> None:
    dep_id = deployment["id"]
    try:
        if step.counts is not None or step.setup is not None:
            fields: dict[str, Any] = {"groups": step.counts or {}}
            if step.setup is not None:
                fields["setup"] = step.setup
            await replica.write("deployment.progress", id=dep_id, **fields)
        if step.status is not None:
            await replica.write(
                "deployment.status", id=dep_id, status=step.status, description=step.description
            )
            log.info(
                "deployment %s of %s v%s %s: %s",
                dep_id,
                deployment["job"],
                deployment["version"],
                step.status,
                step.description,
            )
        if step.promote:
            await replica.write(
                "deployment.promote", id=dep_id, description="every canary is healthy: promoted"
            )
            log.info("deployment %s of %s promoted", dep_id, deployment["job"])
    except (CommandRejected, NoLeader) as e:  # changed meanwhile: the next pass sees it
        log.info("deployment %s step postponed: %s", dep_id, e)


def _timeout(active: list[dict[str, Any]], now_ms: int, wait: float) -> float:
    """Until the nearest progress deadline of a running deployment (at most ``wait``)."""
    deadlines = [d["require_progress_by"] for d in active if d["status"] == "running"]
    if not deadlines:
        return wait
    return min(wait, max(0.05, (min(deadlines) - now_ms) / 1000 + 0.05))


async def deployment_loop(
    replica: Replica, wait: float = 30.0, clock: Callable[[], float] = time.time
) -> None:
    index = 0
    while True:
        with replica.read() as view:
            index = max(index, view.index_of(*WATCHED))
            # The state's active index holds running and paused ones; the few
            # waiting for a promote are found by their status.
            blocked = [d for d in view.deployments.values() if d["status"] == BLOCKED]
            active = view.deployments.active() + blocked
            allocs = {d["job"]: view.allocs.by_job(d["job"]) for d in active}
            jobs = {d["job"]: view.jobs.get(d["job"]) for d in active}
        now = int(clock() * 1000)
        for deployment in sorted(active, key=lambda d: d["create_index"]):
            step = next_step(deployment, allocs[deployment["job"]], now, jobs[deployment["job"]])
            if not step.empty:
                await _propose(replica, deployment, step)
        index = await replica.wait_for_change(WATCHED, index, _timeout(active, now, wait))
