"""A canary or blue-green deployment's steps (pure): its settings taken from
the job once, blocked-on-promotion when every canary is healthy, promoted by
itself with auto_promote, failed by an unhealthy canary, cancelled when a
newer version leaves it blocked."""

from __future__ import annotations

from typing import Any

from domain.scheduler.deployment import BLOCKED, deployment_setup, next_step


def _job(version: int = 1, strategy: str = "canary", **update: Any) -> dict[str, Any]:
    group = {"name": "web", "count": 2, "update": {"strategy": strategy, "canary": 1, **update}}
    return {"name": "app", "version": version, "groups": [group]}


def _deployment(status: str = "running", **group: Any) -> dict[str, Any]:
    counts = {"desired": 2, "placed": 0, "healthy": 0, "unhealthy": 0}
    return {
        "id": "d1",
        "version": 1,
        "status": status,
        "groups": {"web": {**counts, "desired_canaries": 1, "auto_promote": False, **group}},
        "progress_deadline": 600,
        "require_progress_by": 10_000,
    }


def _alloc(i: int, version: int = 1, **doc: Any) -> dict[str, Any]:
    base = {"id": f"a{i}", "group": "web", "job_version": version, "desired_status": "run"}
    return {**base, "status": "running", "healthy": True, **doc}


OLD = [_alloc(1, version=0), _alloc(2, version=0)]


def test_the_settings_come_from_the_job_once() -> None:
    fresh = {**_deployment(), "groups": {"web": {"desired": 2, "placed": 0, "healthy": 0}}}
    step = next_step(fresh, OLD, 5_000, _job(auto_promote=True))
    assert step.setup == {
        "strategy": "canary",
        "groups": {"web": {"desired_canaries": 1, "auto_promote": True}},
    }
    first = deployment_setup(fresh, _job(), [])  # a first version: nothing to try first
    assert first["groups"]["web"]["desired_canaries"] == 0
    reverted = deployment_setup(fresh, {**_job(), "promoted_version": 1}, OLD)
    assert reverted["groups"]["web"]["desired_canaries"] == 0
    assert next_step(_deployment(), OLD, 5_000, _job()).setup is None


def test_a_healthy_canary_blocks_on_promotion_and_the_old_ones_do_not_count() -> None:
    step = next_step(_deployment(), [*OLD, _alloc(3, healthy=None)], 5_000, _job())
    assert step.status is None and step.counts is not None
    assert step.counts["web"]["canaries"] == ["a3"]
    step = next_step(_deployment(), [*OLD, _alloc(3)], 5_000, _job())
    assert step.status == BLOCKED and "promote" in step.description
    assert step.counts == {"web": {"placed": 1, "healthy": 1, "unhealthy": 0, "canaries": ["a3"]}}


def test_blue_green_is_not_successful_before_its_promotion() -> None:
    doc = _deployment(desired_canaries=2)
    step = next_step(doc, [*OLD, _alloc(3), _alloc(4)], 5_000, _job(strategy="blue-green"))
    assert step.status == BLOCKED
    promoted = {**doc, "status": "running", "promoted": True}
    done = next_step(promoted, [_alloc(3), _alloc(4)], 5_000, _job(strategy="blue-green"))
    assert done.status == "successful"


def test_blocked_waits_for_a_user_unless_auto_promote() -> None:
    blocked = _deployment(BLOCKED, placed=1, healthy=1, canaries=["a3"])
    assert next_step(blocked, [*OLD, _alloc(3)], 99_000, _job()).empty  # no progress deadline
    auto = _deployment(BLOCKED, placed=1, healthy=1, canaries=["a3"], auto_promote=True)
    assert next_step(auto, [*OLD, _alloc(3)], 5_000, _job()).promote


def test_an_unhealthy_canary_fails_the_deployment() -> None:
    step = next_step(_deployment(), [*OLD, _alloc(3, healthy=False)], 5_000, _job())
    assert step.status == "failed" and "canary a3" in step.description
    blocked = _deployment(BLOCKED, placed=1, healthy=1, canaries=["a3"])
    late = next_step(blocked, [*OLD, _alloc(3, healthy=False)], 5_000, _job())
    assert late.status == "failed"


def test_a_newer_version_cancels_a_blocked_deployment() -> None:
    blocked = _deployment(BLOCKED, placed=1, healthy=1, canaries=["a3"])
    step = next_step(blocked, [*OLD, _alloc(3)], 5_000, _job(version=2))
    assert step.status == "cancelled" and "version 2" in step.description


def test_after_promotion_the_canaries_are_kept_and_the_rest_rolls() -> None:
    promoted = {**_deployment(placed=1, healthy=1, canaries=["a3"]), "promoted": True}
    allocs = [_alloc(1, version=0), _alloc(3), _alloc(4, healthy=None, previous_alloc="a2")]
    step = next_step(promoted, allocs, 5_000, _job())
    assert step.status is None and step.counts is not None
    assert step.counts["web"] == {"placed": 2, "healthy": 1, "unhealthy": 0, "canaries": ["a3"]}


def test_a_promoted_rainbow_stays_running_while_older_versions_hold_connections() -> None:
    rainbow = {**_deployment(promoted=True), "strategy": "rainbow"}
    rainbow["promoted"] = True
    new = [_alloc(3), _alloc(4)]
    stopping = {"desired_status": "stop", "ingress_drain_index": 7}
    old = [_alloc(1, version=0, connections=2, **stopping), _alloc(2, version=0, **stopping)]
    step = next_step(rainbow, [*old, *new], 5_000, _job(strategy="rainbow"))
    assert step.status is None  # every new replica is healthy, the old ones still drain
    assert step.counts is not None
    assert step.counts["web"]["draining"] == {"0": {"allocations": 2, "connections": 2}}
    gone = [{**a, "status": "complete"} for a in old]
    step = next_step(rainbow, [*gone, *new], 5_000, _job(strategy="rainbow"))
    assert step.status == "successful"
