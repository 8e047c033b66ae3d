"""The restart policy, decided by the agent (pure: time is passed in)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.restart import COMPLETE, FAIL, RESTART, RestartPolicy, RestartTracker


def tracker(**kw: object) -> RestartTracker:
    return RestartTracker(RestartPolicy(**kw))  # type: ignore[arg-type]


def test_service_restarts_after_delay_until_attempts_then_fails() -> None:
    t = tracker(attempts=2, interval=60, delay=5, mode="fail")
    d = t.on_exit(100.0, 1, batch=False)
    assert d.action == RESTART and d.at == 105.0
    t.restarted(105.0)
    d = t.on_exit(110.0, 137, batch=False)
    assert d.action == RESTART and d.at == 115.0
    t.restarted(115.0)
    d = t.on_exit(120.0, 1, batch=False)
    assert d.action == FAIL
    assert "2 restarts within 60s" in d.reason
    assert t.total == 2


def test_service_is_restarted_even_after_exit_zero() -> None:
    d = tracker().on_exit(0.0, 0, batch=False)
    assert d.action == RESTART


def test_batch_exit_zero_completes_and_failure_restarts() -> None:
    t = tracker(attempts=1, delay=0)
    assert t.on_exit(0.0, 0, batch=True).action == COMPLETE
    assert t.on_exit(0.0, 3, batch=True).action == RESTART
    t.restarted(0.0)
    assert t.on_exit(1.0, 3, batch=True).action == FAIL


def test_restarts_outside_the_interval_do_not_count() -> None:
    t = tracker(attempts=1, interval=10, delay=1)
    assert t.on_exit(0.0, 1, batch=False).action == RESTART
    t.restarted(1.0)
    assert t.on_exit(5.0, 1, batch=False).action == FAIL  # 1 restart within 10 s
    assert t.on_exit(11.5, 1, batch=False).action == RESTART  # it left the interval


def test_delay_mode_waits_out_the_interval() -> None:
    t = tracker(attempts=2, interval=30, delay=2, mode="delay")
    t.restarted(10.0)
    t.restarted(12.0)
    d = t.on_exit(14.0, 1, batch=False)
    assert d.action == RESTART
    assert d.at == 40.0  # the oldest restart (10) leaves the 30 s interval
    assert "restart mode delay" in d.reason
    t.restarted(40.0)
    # counting went on afresh: 12 fell out at 42, so one slot is free again
    assert t.on_exit(43.0, 1, batch=False).at == 45.0


def test_zero_attempts_fails_at_once_in_either_mode() -> None:
    assert tracker(attempts=0, mode="fail").on_exit(0.0, 1, batch=False).action == FAIL
    assert tracker(attempts=0, mode="delay").on_exit(0.0, 1, batch=False).action == FAIL


def test_unknown_exit_code_is_a_failure_for_batch() -> None:
    d = tracker().on_exit(0.0, None, batch=True)
    assert d.action == RESTART and "unknown exit code" in d.reason


def test_policy_from_normalized_group_spec() -> None:
    p = RestartPolicy.from_spec({"attempts": 4, "interval": 120, "delay": 1.5, "mode": "delay"})
    assert p == RestartPolicy(attempts=4, interval=120.0, delay=1.5, mode="delay")
    assert RestartPolicy.from_spec(None) == RestartPolicy()


@given(
    attempts=st.integers(0, 5),
    interval=st.floats(1, 100),
    delay=st.floats(0, 10),
    gaps=st.lists(st.floats(0, 50), min_size=1, max_size=30),
)
def test_fail_mode_never_exceeds_attempts_within_interval(
    attempts: int, interval: float, delay: float, gaps: list[float]
) -> None:
    """Whatever the exit times, no window of ``interval`` holds more than
    ``attempts`` restarts, and once failed the task stays failed."""
    t = tracker(attempts=attempts, interval=interval, delay=delay, mode="fail")
    now = 0.0
    restarts: list[float] = []
    for gap in gaps:
        now += gap
        d = t.on_exit(now, 1, batch=False)
        if d.action == FAIL:
            break
        assert d.action == RESTART and d.at is not None and d.at >= now
        now = d.at
        t.restarted(now)
        restarts.append(now)
    for i, start in enumerate(restarts):
        inside = [r for r in restarts[i:] if r < start + interval]
        assert len(inside) <= attempts
