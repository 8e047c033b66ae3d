"""Blocked jobs: a job that has no allocation and could not be placed waits,
like Nomad's blocked evaluations, until something that decides its placement
changes.

What decides the placement of a job without allocations is the cluster's
nodes and allocations (their raft table indexes stand for them) and the
job's *placement inputs*: its type and constraints, and per group the count,
constraints and each task's driver, resources, ports and constraints. A new
version that changes only the image, env, meta or checks of a job that runs
nowhere gets the same answer, so the scheduling loop skips the pass (and its
status write) instead of recomputing the same failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.scheduler.model import Plan

# (nodes table index, allocations table index) when the verdict was made.
ClusterMark = tuple[int, int]


def placement_inputs(job: Mapping[str, Any]) -> tuple[Any, ...]:
    """Everything of a job that can change where (or whether) it is placed,
    compared with ``==`` (stored documents are never changed in place)."""
    groups = [
        (
            g.get("name"),
            g.get("count", 1),
            g.get("constraints"),
            [
                (t.get("driver"), t.get("resources"), t.get("ports"), t.get("constraints"))
                for t in g.get("tasks") or ()
            ],
        )
        for g in job.get("groups") or ()
    ]
    return (
        job.get("type"),
        bool(job.get("stop")),
        job.get("status") == "dead",
        job.get("constraints"),
        groups,
    )


class BlockedJobs:
    """The jobs the scheduling loop may skip, with what their verdict rests on."""

    def __init__(self) -> None:
        self._verdicts: dict[str, tuple[ClusterMark, tuple[Any, ...]]] = {}

    def __len__(self) -> int:
        return len(self._verdicts)

    def __contains__(self, name: object) -> bool:
        return name in self._verdicts

    def still_blocked(self, job: Mapping[str, Any], mark: ClusterMark) -> bool:
        """True when planning ``job`` again would fail the same way."""
        verdict = self._verdicts.get(job["name"])
        if verdict is None:
            return False
        if verdict[0] == mark and verdict[1] == placement_inputs(job):
            return True
        del self._verdicts[job["name"]]
        return False

    def record(
        self, job: Mapping[str, Any], plan: Plan, had_allocs: bool, mark: ClusterMark | None
    ) -> None:
        """Remember a plan's verdict: blocked when the job had no allocation and
        the plan places and stops nothing but reports placement failures.
        ``mark`` is None when the plan saw uncommitted placements of other jobs
        (their plans may yet be refused): no verdict rests on those."""
        name = job["name"]
        if mark is not None and plan.failures and not (plan.places or plan.stops or had_allocs):
            self._verdicts[name] = (mark, placement_inputs(job))
        else:
            self._verdicts.pop(name, None)

    def forget(self, name: str) -> None:
        self._verdicts.pop(name, None)
