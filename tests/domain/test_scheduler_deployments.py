"""What deployments ask of the scheduler: a hold (a paused or failed
deployment) stops the rolling update without stopping the rest, and the
unhealthy replacement of a version the job left is stopped."""

from __future__ import annotations

from dataclasses import replace

from domain.scheduler import schedule
from tests.domain.test_scheduler import UNIQUE, applied, live, make_job, nodes


def test_a_hold_stops_replacements_but_not_missing_replicas() -> None:
    ns = nodes(4)
    allocs = applied(schedule(make_job(count=2), ns, [], new_id=UNIQUE, seed=7), [])
    allocs = [replace(a, healthy=True) for a in allocs]
    v1 = make_job(version=1, count=3)
    plan = schedule(v1, ns, allocs, new_id=UNIQUE, seed=7, hold="deployment d1 is paused")
    assert [p.reason for p in plan.places] == ["new"] and not plan.stops
    assert plan.halted == {"web": "deployment d1 is paused"} and plan.deferred == {"web": 2}
    resumed = schedule(v1, ns, allocs, new_id=UNIQUE, seed=7)
    assert "update" in [p.reason for p in resumed.places] and not resumed.halted


def test_the_unhealthy_replacement_of_a_left_version_is_stopped() -> None:
    ns = nodes(3)
    allocs = applied(schedule(make_job(count=2), ns, [], new_id=UNIQUE, seed=7), [])
    drained = allocs[0].node
    ns = [replace(n, drain=True) if n.id == drained else n for n in ns]
    plan = schedule(make_job(count=2), ns, allocs, new_id=UNIQUE, seed=7)
    (migration,) = plan.places
    allocs = applied(plan, allocs)  # running, not healthy yet
    plan = schedule(make_job(version=1, count=2), ns, allocs, new_id=UNIQUE, seed=7)
    stopped = {s.alloc_id: s.reason for s in plan.stops}
    assert stopped[migration.alloc_id] == "replacement for version 0, the job is at 1"
    assert allocs[0].id not in {p.previous for p in plan.places if p.reason == "update"}
    after = live(applied(plan, allocs))
    assert migration.alloc_id not in {a.id for a in after}
