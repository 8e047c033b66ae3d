"""A deployment's next step from the allocations of its version (pure)."""

from __future__ import annotations

from typing import Any

from domain.scheduler.deployment import DeploymentStep, next_step

DEPLOYMENT = {
    "id": "d1",
    "version": 1,
    "status": "running",
    "groups": {"web": {"desired": 2, "placed": 0, "healthy": 0, "unhealthy": 0}},
    "progress_deadline": 600,
    "require_progress_by": 10_000,
}


def _alloc(i: int, version: int = 1, **doc: Any) -> dict[str, Any]:
    base = {"id": f"a{i}", "group": "web", "job_version": version, "desired_status": "run"}
    return {**base, "status": "running", "healthy": None, **doc}


def test_counts_only_the_version_and_reports_changes() -> None:
    allocs = [_alloc(1, healthy=True), _alloc(2), _alloc(3, version=0, healthy=True)]
    step = next_step(DEPLOYMENT, allocs, now_ms=5_000)
    assert step == DeploymentStep(counts={"web": {"placed": 2, "healthy": 1, "unhealthy": 0}})
    same = {**DEPLOYMENT, "groups": {"web": {"desired": 2, **step.counts["web"]}}}  # type: ignore[index]
    assert next_step(same, allocs, now_ms=5_000).empty


def test_every_replica_healthy_is_success() -> None:
    allocs = [_alloc(1, healthy=True), _alloc(2, healthy=True)]
    assert next_step(DEPLOYMENT, allocs, now_ms=5_000).status == "successful"


def test_an_unhealthy_allocation_fails_it() -> None:
    step = next_step(DEPLOYMENT, [_alloc(1, healthy=True), _alloc(2, healthy=False)], 5_000)
    assert step.status == "failed" and "a2" in step.description
    assert "healthy deadline" in step.description
    failed = next_step(DEPLOYMENT, [_alloc(1, status="failed", desired_status="stop")], 5_000)
    assert failed.status == "failed" and "failed" in failed.description


def test_the_progress_deadline_fails_it_unless_health_just_moved() -> None:
    assert next_step(DEPLOYMENT, [_alloc(1)], now_ms=10_001).status == "failed"
    assert next_step(DEPLOYMENT, [_alloc(1, healthy=True)], now_ms=10_001).status is None
    assert next_step(DEPLOYMENT, [_alloc(1)], now_ms=9_999).status is None


def test_paused_reports_counts_only_and_finished_ones_nothing() -> None:
    paused = {**DEPLOYMENT, "status": "paused"}
    step = next_step(paused, [_alloc(1, healthy=False)], now_ms=99_999)
    assert step.status is None and step.counts == {
        "web": {"placed": 1, "healthy": 0, "unhealthy": 1}
    }
    assert next_step({**DEPLOYMENT, "status": "failed"}, [_alloc(1)], 0).empty
