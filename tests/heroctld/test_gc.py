"""Allocation GC: the pure choice of what to collect and the FSM side
(its settings are read in heroctld.config: tests/heroctld/test_config.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from heroctld.controllers.gc import batches, collectable, finished_at, is_terminal
from raft.fsm import apply_command
from raft.state import State

HOUR_MS = 3_600_000
NOW = 100 * HOUR_MS


def alloc(
    n: int,
    *,
    job: str = "web",
    group: str = "app",
    desired: str = "stop",
    status: str = "complete",
    at: int = NOW - 2 * HOUR_MS,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": f"{n:032x}",
        "job": job,
        "group": group,
        "node": "n1",
        "job_version": 1,
        "desired_status": desired,
        "status": status,
        "create_time": at - 1000,
        "events": [{"ts": at, "type": "stop", "message": "stopped"}],
        **extra,
    }


JOBS = {"web": {"name": "web", "version": 1}}


def pick(allocs: list[dict[str, Any]], jobs: Any = None, keep: int = 0, threshold: float = 3600):
    return collectable(allocs, JOBS if jobs is None else jobs, NOW, threshold, keep)


def test_only_stopped_and_finished_allocations_are_terminal() -> None:
    assert is_terminal(alloc(1, status="complete"))
    assert is_terminal(alloc(1, status="failed"))
    assert is_terminal(alloc(1, status="lost"))
    assert not is_terminal(alloc(1, status="running"))  # stop asked, not done yet
    assert not is_terminal(alloc(1, status="pending"))
    # Desired to run: the scheduler reads these (batch runs done, failed replicas).
    assert not is_terminal(alloc(1, desired="run", status="complete"))
    assert not is_terminal(alloc(1, desired="run", status="failed"))
    assert pick([alloc(1, status="running"), alloc(2, desired="run", status="failed")]) == []


def test_age_comes_from_the_newest_timestamp_in_the_allocation() -> None:
    a = alloc(1, at=NOW - 2 * HOUR_MS)
    assert finished_at(a) == NOW - 2 * HOUR_MS
    a["client_updated_at"] = NOW - 10
    assert finished_at(a) == NOW - 10
    assert finished_at({"id": "x"}) == 0
    old, young = alloc(1, at=NOW - HOUR_MS - 1), alloc(2, at=NOW - HOUR_MS + 1)
    assert pick([old, young]) == [old["id"]]
    assert pick([old, young], threshold=0) == [old["id"], young["id"]]


def test_newest_finished_per_group_are_kept_while_the_job_exists() -> None:
    allocs = [alloc(i, at=NOW - (10 - i) * HOUR_MS) for i in range(5)]  # all old, 0 oldest
    allocs += [alloc(10 + i, group="db", at=NOW - 5 * HOUR_MS) for i in range(2)]
    ids = [a["id"] for a in allocs]
    assert pick(allocs, keep=2) == ids[:3]  # app keeps its 2 newest, db keeps both
    assert pick(allocs, keep=0) == ids  # oldest first
    # The job is gone: nothing to inspect any more, everything old goes.
    assert sorted(pick(allocs, jobs={}, keep=2)) == sorted(ids)


def test_an_unhealthy_replacement_of_the_current_version_stays() -> None:
    """It is what halts the rolling update (domain.scheduler.reconcile)."""
    halting = alloc(1, previous_alloc="f" * 32, healthy=False)
    old_version = alloc(2, previous_alloc="f" * 32, healthy=False, job_version=0)
    healthy = alloc(3, previous_alloc="f" * 32, healthy=True)
    assert pick([halting, old_version, healthy]) == [old_version["id"], healthy["id"]]
    assert pick([halting], jobs={}) == [halting["id"]]  # job deleted: nothing to halt


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["run", "stop"]),
            st.sampled_from(["pending", "running", "complete", "failed", "lost"]),
            st.sampled_from(["a", "b"]),
            st.integers(0, 5 * HOUR_MS),
        ),
        max_size=30,
    ),
    st.integers(0, 4),
)
def test_never_collects_a_live_young_or_kept_allocation(rows: list[Any], keep: int) -> None:
    allocs = [
        alloc(i, desired=d, status=s, group=g, at=NOW - age)
        for i, (d, s, g, age) in enumerate(rows)
    ]
    chosen = set(pick(allocs, keep=keep))
    for group in ("a", "b"):
        terminal = sorted(
            (finished_at(a), a["id"]) for a in allocs if a["group"] == group and is_terminal(a)
        )
        kept = {i for _, i in terminal[len(terminal) - keep :]} if keep else set()
        assert not chosen & kept
    for a in allocs:
        if a["id"] in chosen:
            assert is_terminal(a) and finished_at(a) <= NOW - HOUR_MS


def test_batches_are_bounded() -> None:
    ids = [str(i) for i in range(7)]
    assert batches(ids, 3) == [["0", "1", "2"], ["3", "4", "5"], ["6"]]
    assert batches([], 3) == []
    assert batches(ids, 0)[0] == ["0"]


def test_fsm_removes_only_what_is_still_terminal() -> None:
    state = State()
    done, back = alloc(1), alloc(2)
    for a in (done, back):
        state.table("allocations")[a["id"]] = a
        state.index_alloc(a)
    # Between the leader's choice and the apply, allocation 2 was wanted again.
    state.table("allocations")[back["id"]] = dict(back, desired_status="run")
    result = apply_command(state, {"op": "alloc.gc", "ids": [done["id"], back["id"]]}, 7)
    assert result["ok"] and result["removed"] == 1
    assert list(state.table("allocations")) == [back["id"]]
    assert [a["id"] for a in state.allocs_of(job="web")] == [back["id"]]
    assert state.table_index["allocations"] == 7
