"""Blocked jobs: which resubmits of an unplaceable job may skip a scheduler pass."""

from __future__ import annotations

from typing import Any

import pytest

from domain.jobspec import normalize_job
from domain.scheduler import ClusterState, Node, schedule_on
from domain.scheduler.blocked import BlockedJobs

MARK = (7, 9)  # (nodes index, allocations index)


def job(version: int = 0, **spec: Any) -> dict[str, Any]:
    doc = normalize_job({"name": "web", "image": "busybox", "count": 2, **spec})
    doc["version"] = version
    return doc


def blocked_after_failure(doc: dict[str, Any], mark: tuple[int, int] = MARK) -> BlockedJobs:
    plan = schedule_on(doc, ClusterState([], []))
    assert plan.failures and not plan.places
    blocked = BlockedJobs()
    blocked.record(doc, plan, had_allocs=False, mark=mark)
    return blocked


def test_a_new_version_that_changes_nothing_about_placement_stays_blocked() -> None:
    blocked = blocked_after_failure(job())
    same_placement = job(1, image="busybox:2", env={"A": "1"}, meta={"rev": "2"})
    assert blocked.still_blocked(same_placement, MARK)
    assert "web" in blocked


@pytest.mark.parametrize(
    "change",
    [
        {"count": 3},
        {"resources": {"cpu": 200}},
        {"resources": {"memory": 64}},
        {"ports": [{"name": "http", "to": 80}]},
        {"constraints": [{"attribute": "node.label.zone", "value": "a"}]},
        {"driver": "exec", "image": None, "command": ["/bin/true"]},
        {"type": "batch"},
    ],
)
def test_a_change_to_a_placement_input_unblocks(change: dict[str, Any]) -> None:
    blocked = blocked_after_failure(job())
    assert not blocked.still_blocked(job(1, **change), MARK)
    assert "web" not in blocked  # and the verdict is gone, not just bypassed


@pytest.mark.parametrize("mark", [(8, 9), (7, 10)])
def test_a_change_to_nodes_or_allocations_unblocks(mark: tuple[int, int]) -> None:
    blocked = blocked_after_failure(job())
    assert not blocked.still_blocked(job(1), mark)


def test_only_a_failure_of_a_job_that_runs_nowhere_blocks() -> None:
    doc = job()
    failed = schedule_on(doc, ClusterState([], []))
    blocked = BlockedJobs()
    blocked.record(doc, failed, had_allocs=True, mark=MARK)
    assert "web" not in blocked  # it runs somewhere: a new version may roll
    blocked.record(doc, failed, had_allocs=False, mark=None)
    assert "web" not in blocked  # the plan saw other jobs' uncommitted placements
    placed = schedule_on(doc, ClusterState([Node(id="n1", name="n1", cpu=4000, memory=4096)]))
    assert placed.places
    blocked.record(doc, placed, had_allocs=False, mark=MARK)
    assert "web" not in blocked


def test_a_placed_plan_or_forget_clears_a_verdict() -> None:
    doc = job()
    blocked = blocked_after_failure(doc)
    placed = schedule_on(doc, ClusterState([Node(id="n1", name="n1", cpu=4000, memory=4096)]))
    blocked.record(doc, placed, had_allocs=False, mark=MARK)
    assert len(blocked) == 0
    blocked = blocked_after_failure(doc)
    blocked.forget("web")
    assert not blocked.still_blocked(doc, MARK)
