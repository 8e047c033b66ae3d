"""Which deployment holds a job's rolling update (the scheduler's `hold`)."""

from __future__ import annotations

from typing import Any

from heroctld.controllers.scheduling import rollout_hold, stagger_until


def _dep(version: int, status: str) -> dict[str, Any]:
    return {"id": f"d{version}", "version": version, "status": status, "status_description": "x"}


def test_a_paused_or_failed_deployment_of_the_current_version_holds() -> None:
    job = {"name": "web", "version": 2}
    assert rollout_hold(job, [_dep(1, "failed"), _dep(2, "paused")]) == "deployment d2 is paused"
    assert rollout_hold(job, [_dep(2, "failed")]) == "deployment d2 failed: x"
    assert rollout_hold(job, [_dep(2, "running")]) is None
    assert rollout_hold(job, [_dep(2, "successful")]) is None
    # an older version's failure (a rollback since) holds nothing
    assert rollout_hold(job, [_dep(1, "failed")]) is None
    assert rollout_hold(job, []) is None


def test_a_stagger_holds_the_next_batch_until_its_time() -> None:
    update = {"stagger": 2}
    job = {"name": "web", "version": 2, "groups": [{"name": "app", "update": update}]}
    running = _dep(2, "running")
    replaced = {"group": "app", "job_version": 2, "previous_alloc": "old", "healthy_at": 3_000}
    allocs = [replaced, {**replaced, "healthy_at": 1_000}, {**replaced, "previous_alloc": None}]
    assert stagger_until(job, [running], allocs) == 5_000
    assert rollout_hold(job, [running], 4_000, allocs) == "stagger: pausing between batches"
    assert rollout_hold(job, [running], 5_000, allocs) is None
    assert stagger_until(job, [_dep(2, "paused")], allocs) is None
    assert stagger_until({**job, "groups": [{"name": "app"}]}, [running], allocs) is None
