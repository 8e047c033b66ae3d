"""The rate limiter and the login guard, with an injected clock (no sleeps)."""

from __future__ import annotations

import pytest

from api.security.login_guard import LoginGuard, Throttled
from httpkit.ratelimit import RateLimiter


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_window_admits_limit_then_refuses_with_retry_after() -> None:
    clock = Clock()
    rl = RateLimiter(clock)
    for i in range(1000):
        d = rl.hit("token:a", 1000)
        assert d.allowed and d.remaining == 999 - i
        clock.t += 0.01
    refused = rl.hit("token:a", 1000)
    assert not refused.allowed and refused.remaining == 0
    assert refused.retry_after == 50  # window opened 10 s ago
    assert refused.headers() == {
        "X-RateLimit-Limit": "1000",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1000060",
    }
    # another identity is untouched by a's burst
    other = rl.hit("token:b", 1000)
    assert other.allowed and other.remaining == 999
    # after the window, a starts afresh
    clock.t = 1_000_060.0
    assert rl.hit("token:a", 1000).remaining == 999


def test_window_anchors_at_first_request_not_wall_minute() -> None:
    clock = Clock(59.9)  # just before a wall-clock minute boundary
    rl = RateLimiter(clock)
    for _ in range(5):
        assert rl.hit("k", 5).allowed
    clock.t = 60.1  # a new wall-clock minute, same window
    d = rl.hit("k", 5)
    assert not d.allowed and d.retry_after == 60


def test_retry_after_is_at_least_one_second() -> None:
    clock = Clock(0.0)
    rl = RateLimiter(clock)
    rl.hit("k", 1)
    clock.t = 59.99
    assert rl.hit("k", 1).retry_after == 1


def test_unlimited_and_pruning() -> None:
    clock = Clock()
    rl = RateLimiter(clock)
    d = rl.hit("k", 0)
    assert d.allowed and d.headers() == {}
    for i in range(5000):
        rl.hit(f"k{i}", 10)
    clock.t += 120
    for _ in range(5000):
        rl.hit("fresh", 10**9)
    assert len(rl) < 5000  # old windows were pruned


def _retry_after(g: LoginGuard, username: str | None, address: str) -> int | None:
    """The guard's answer to a new attempt that then fails (its slot stays counted)."""
    try:
        g.reserve(username, address)
    except Throttled as e:
        return e.retry_after
    return None


def test_login_guard_per_user_and_per_address() -> None:
    clock = Clock(0.0)
    g = LoginGuard(clock, max_per_user=3, max_per_address=5, window=60)
    for _ in range(3):
        assert _retry_after(g, "bob", "1.1.1.1") is None
    assert _retry_after(g, "bob", "2.2.2.2") == 60  # the user is locked from everywhere
    assert _retry_after(g, "alice", "1.1.1.1") is None  # the address still has budget
    assert _retry_after(g, None, "1.1.1.1") is None
    assert _retry_after(g, "carol", "1.1.1.1") == 60  # the address is now locked
    clock.t = 61
    assert _retry_after(g, "bob", "3.3.3.3") is None
    g.reserve("bob", "3.3.3.3").succeeded()  # clears bob's failures, gives its own slot back
    assert _retry_after(g, "bob", "3.3.3.3") is None


def test_login_guard_counts_an_attempt_before_its_verdict() -> None:
    """Attempts in flight hold their slots: a burst gets exactly the limit through."""
    g = LoginGuard(Clock(0.0), max_per_user=3, max_per_address=100, window=60)
    in_flight = [g.reserve("bob", "1.1.1.1") for _ in range(3)]  # none has a verdict yet
    with pytest.raises(Throttled):
        g.reserve("bob", "1.1.1.1")
    in_flight[0].succeeded()  # a success clears the user's count, in-flight ones too
    for _ in range(3):
        g.reserve("bob", "1.1.1.1")
    with pytest.raises(Throttled):
        g.reserve("bob", "1.1.1.1")
    # a success gives back only its own slot on the address
    h = LoginGuard(Clock(0.0), max_per_user=100, max_per_address=2, window=60)
    h.reserve("a", "9.9.9.9").succeeded()
    h.reserve("b", "9.9.9.9")
    h.reserve("c", "9.9.9.9").succeeded()
    h.reserve("d", "9.9.9.9")
    with pytest.raises(Throttled):
        h.reserve("e", "9.9.9.9")
