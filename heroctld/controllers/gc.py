"""Garbage collection of finished allocations, on the leader.

Stopped, failed, replaced and lost allocations stay in the replicated state
until this controller proposes `alloc.gc` for them, so the state (snapshots,
every server's memory, allocation listings) stays bounded however long a
cluster runs. Like Nomad's allocation GC (`job_gc_threshold`):

* only *terminal* allocations go: desired ``stop`` and reported ``complete``,
  ``failed`` or ``lost`` (the FSM checks the same again when it applies the
  command, so a stale choice removes nothing that came back to life). An
  allocation still desired to run is never collected, even when it failed or
  completed: the scheduler reads those (a completed batch run counts toward
  the job's runs; a failed replacement halts a rolling update);
* only once they have been terminal for ``threshold`` seconds, measured from
  the newest timestamp in the allocation itself (its last event, its last
  report from the node, its creation): timestamps that travelled in commands,
  so the choice does not depend on when this server happened to apply them;
* the newest ``keep_per_group`` terminal allocations of each group of a job
  that still exists are kept whatever their age, so `heroctl job status`
  still shows why the last replicas died after a quiet night (and a job
  scaled to 0 still reads `dead`: a job's status comes from its
  allocations). A deleted job's allocations all go once past the threshold;
* a replacement that failed its health during a rolling update of the job's
  current version is kept: it is what halts the update until a new version
  is submitted;
* at most ``batch_size`` ids per command, oldest first, so a backlog (first
  start after an upgrade) becomes a few small raft entries, not one huge one.

Logs outlive this: they stay on the node that ran the allocation for the
node's log retention, and ``GET /v1/logs/<full id>`` still finds them there
(api.routes_logs.find_alloc asks every node's agent). What goes is the
allocation's row: `GET /v1/allocations/<id>` answers 404 afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from raft.fsm_allocs import TERMINAL
from raft.replica import CommandRejected, NoLeader, Replica

log = logging.getLogger("heroctld.gc")


@dataclass
class GCSettings:
    """[gc] or HEROCTL_GC_<KEY> (heroctld.controllers.gc): ``alloc_threshold``:
    how long a finished allocation stays in the state ("1h", seconds);
    ``keep_per_group``: the newest finished allocations of each group of a
    job that still exists, kept whatever their age; ``interval``: seconds
    between passes; ``batch_size``: allocations per `alloc.gc` command."""

    alloc_threshold: float = 3600.0
    keep_per_group: int = 3
    interval: float = 60.0
    batch_size: int = 256


def is_terminal(alloc: Mapping[str, Any]) -> bool:
    """What `alloc.gc` accepts: stopped on purpose and finished on its node."""
    return alloc.get("desired_status") == "stop" and alloc.get("status") in TERMINAL


def finished_at(alloc: Mapping[str, Any]) -> int:
    """The newest timestamp (ms) the allocation carries: when it last changed."""
    stamps = [alloc.get("create_time"), alloc.get("client_updated_at")]
    stamps += [e.get("ts") for e in alloc.get("events") or () if isinstance(e, Mapping)]
    return max((int(t) for t in stamps if isinstance(t, int | float)), default=0)


def _halts_update(alloc: Mapping[str, Any], job: Mapping[str, Any]) -> bool:
    """An unhealthy replacement of the current version: what makes the
    scheduler halt a rolling update (domain.scheduler.reconcile)."""
    return (
        alloc.get("job_version") == job.get("version")
        and alloc.get("previous_alloc") is not None
        and alloc.get("healthy") is False
    )


def collectable(
    allocs: Iterable[Mapping[str, Any]],
    jobs: Mapping[str, Mapping[str, Any]],
    now_ms: int,
    threshold: float,
    keep_per_group: int,
) -> list[str]:
    """Ids of the allocations to collect, oldest first. Pure.

    ``jobs``: the current job documents by name (a job missing here was deleted).
    """
    by_group: dict[tuple[str, str], list[tuple[int, str, Mapping[str, Any]]]] = {}
    for alloc in allocs:
        if is_terminal(alloc):
            key = (str(alloc.get("job")), str(alloc.get("group")))
            by_group.setdefault(key, []).append((finished_at(alloc), str(alloc["id"]), alloc))
    cutoff = now_ms - int(threshold * 1000)
    chosen: list[tuple[int, str]] = []
    for (job_name, _), members in by_group.items():
        job = jobs.get(job_name)
        members.sort(key=lambda m: (m[0], m[1]))
        if job is not None and keep_per_group > 0:
            members = members[:-keep_per_group]
        for when, alloc_id, alloc in members:
            if when > cutoff:
                break  # sorted: the rest are younger
            if job is not None and _halts_update(alloc, job):
                continue
            chosen.append((when, alloc_id))
    chosen.sort()
    return [alloc_id for _, alloc_id in chosen]


def batches(ids: list[str], size: int) -> list[list[str]]:
    size = max(1, size)
    return [ids[i : i + size] for i in range(0, len(ids), size)]


async def collect_once(
    replica: Replica, settings: GCSettings, clock: Callable[[], float] = time.time
) -> int:
    """One pass: choose, then propose in batches; returns how many were removed."""
    with replica.read() as view:
        allocs = list(view.allocs.values())
        jobs = view.jobs.copy()
    ids = collectable(
        allocs, jobs, int(clock() * 1000), settings.alloc_threshold, settings.keep_per_group
    )
    removed = 0
    for chunk in batches(ids, settings.batch_size):
        result = await replica.write("alloc.gc", ids=chunk)
        removed += int(result.get("removed", 0))
    if removed:
        log.info("collected %d finished allocations", removed)
    return removed


async def gc_loop(
    replica: Replica, settings: GCSettings, clock: Callable[[], float] = time.time
) -> None:
    """The leader-only controller (see heroctld.controllers.leadership)."""
    while True:
        try:
            await collect_once(replica, settings, clock)
        except (NoLeader, CommandRejected) as e:
            log.info("allocation GC postponed: %s", e)
        await asyncio.sleep(settings.interval)
