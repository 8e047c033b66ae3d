"""Canary and blue-green in the scheduler: new-version replicas beside the old
ones until the version is promoted (``promoted_version`` in the job), then the
old ones go (the canaries count as replaced) and the rest rolls."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from domain.scheduler import Allocation, schedule
from tests.domain.test_scheduler import UNIQUE, applied, live, make_job, nodes


def _job(version: int, strategy: str, count: int = 3, canary: int = 1) -> dict[str, Any]:
    job = make_job(version=version, count=count, update={"max_parallel": 1})
    (group,) = job["groups"]
    group["update"].update(strategy=strategy, canary=canary)  # as the job spec normalizes it
    return job


def _running_v0(strategy: str, count: int = 3) -> list[Allocation]:
    plan = schedule(_job(0, strategy, count), nodes(4), [], new_id=UNIQUE, seed=7)
    assert [p.reason for p in plan.places] == ["new"] * count  # a first version: no canary
    return [replace(a, healthy=True) for a in applied(plan, [])]


def test_a_canary_runs_beside_the_old_replicas_until_promoted() -> None:
    ns, allocs = nodes(4), _running_v0("canary")
    v1 = _job(1, "canary", canary=1)
    plan = schedule(v1, ns, allocs, new_id=UNIQUE, seed=7)
    assert [p.reason for p in plan.places] == ["canary"] and not plan.stops
    assert plan.places[0].index == 3 and plan.places[0].previous is None
    assert plan.deferred == {"web": 3} and not plan.halted
    allocs = [replace(a, healthy=True) for a in applied(plan, allocs)]
    waiting = schedule(v1, ns, allocs, new_id=UNIQUE, seed=7)
    assert not waiting.places and not waiting.stops and waiting.deferred == {"web": 3}

    promoted = schedule(dict(v1, promoted_version=1), ns, allocs, new_id=UNIQUE, seed=7)
    reasons = sorted(s.reason for s in promoted.stops)  # the canary took one old one's place
    assert reasons == ["job updated to version 1", "replaced by the promoted version 1"]
    assert [p.reason for p in promoted.places] == ["update"]  # then one at a time
    after = live(applied(promoted, allocs))
    assert len(after) == 3 and sum(a.job_version == 1 for a in after) == 2


def test_a_stale_promotion_of_an_older_version_does_not_count() -> None:
    ns, allocs = nodes(4), _running_v0("canary")
    plan = schedule(dict(_job(1, "canary"), promoted_version=0), ns, allocs, new_id=UNIQUE, seed=7)
    assert [p.reason for p in plan.places] == ["canary"] and not plan.stops


def test_blue_green_runs_a_full_new_set_then_switches_at_once() -> None:
    ns, allocs = nodes(4), _running_v0("blue-green", count=2)
    v1 = _job(1, "blue-green", count=2, canary=2)
    plan = schedule(v1, ns, allocs, new_id=UNIQUE, seed=7)
    assert [p.reason for p in plan.places] == ["canary", "canary"] and not plan.stops
    allocs = [replace(a, healthy=True) for a in applied(plan, allocs)]
    assert len(live(allocs)) == 4
    switched = schedule(dict(v1, promoted_version=1), ns, allocs, new_id=UNIQUE, seed=7)
    assert not switched.places
    assert {s.alloc_id for s in switched.stops} == {a.id for a in allocs if a.job_version == 0}
    assert {a.job_version for a in live(applied(switched, allocs))} == {1}


def test_a_hold_keeps_the_canaries_and_the_old_replicas() -> None:
    ns, allocs = nodes(4), _running_v0("canary")
    v1 = _job(1, "canary")
    allocs = applied(schedule(v1, ns, allocs, new_id=UNIQUE, seed=7), allocs)
    held = schedule(v1, ns, allocs, new_id=UNIQUE, seed=7, hold="deployment d failed")
    assert not held.places and not held.stops and held.halted == {"web": "deployment d failed"}


def test_a_revert_stops_the_canaries_and_keeps_the_old_replicas() -> None:
    ns, allocs = nodes(4), _running_v0("canary", count=2)
    allocs = applied(
        schedule(_job(1, "canary", count=2), ns, allocs, new_id=UNIQUE, seed=7), allocs
    )
    allocs = [replace(a, healthy=False) if a.job_version == 1 else a for a in allocs]
    canary = next(a for a in allocs if a.job_version == 1)
    # auto_revert resubmits version 0's spec as version 2, promoted (nothing to try
    # first: it ran before), so the unhealthy canary is the first to go
    reverted = dict(_job(2, "canary", count=2), promoted_version=2)
    plan = schedule(reverted, ns, allocs, new_id=UNIQUE, seed=7)
    assert canary.id in {s.alloc_id for s in plan.stops}


def test_a_canary_count_above_the_group_count_places_no_more_than_the_count() -> None:
    """A job stored by an older release after a scale down (canary 4, count 2)."""
    ns, allocs = nodes(4), _running_v0("blue-green", count=2)
    plan = schedule(_job(1, "blue-green", count=2, canary=4), ns, allocs, new_id=UNIQUE, seed=7)
    assert [p.reason for p in plan.places] == ["canary", "canary"] and not plan.stops
