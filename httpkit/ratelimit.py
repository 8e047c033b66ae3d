"""Requests-per-minute limits per identity: pure arithmetic with an injected clock.

A window opens at an identity's first request and lasts 60 s; it admits
`limit` requests, then answers "retry after the window ends". Anchoring the
window at the first request (rather than at wall-clock minutes) means a burst
of `limit + 1` requests inside one minute is always refused once, wherever
the minute boundary falls. Each key has its own window, so one identity's
burst never touches another's budget. `limit == 0` means unlimited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0
_PRUNE_EVERY = 4096


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # clock time when the window ends
    retry_after: int  # whole seconds, >= 1 when refused, else 0

    def headers(self) -> dict[str, str]:
        if self.limit == 0:
            return {}
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }


UNLIMITED = Decision(True, 0, 0, 0.0, 0)


class RateLimiter:
    def __init__(
        self, clock: Callable[[], float] = time.time, window: float = WINDOW_SECONDS
    ) -> None:
        self._clock = clock
        self._window = window
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window start, count)
        self._hits = 0

    def hit(self, key: str, limit: int) -> Decision:
        if limit <= 0:
            return UNLIMITED
        now = self._clock()
        self._hits += 1
        if self._hits % _PRUNE_EVERY == 0:
            self._prune(now)
        start, count = self._windows.get(key, (now, 0))
        if now >= start + self._window:
            start, count = now, 0
        reset_at = start + self._window
        if count >= limit:
            self._windows[key] = (start, count)
            return Decision(False, limit, 0, reset_at, max(1, math.ceil(reset_at - now)))
        count += 1
        self._windows[key] = (start, count)
        return Decision(True, limit, limit - count, reset_at, 0)

    def _prune(self, now: float) -> None:
        expired = [k for k, (start, _) in self._windows.items() if now >= start + self._window]
        for k in expired:
            del self._windows[k]

    def __len__(self) -> int:
        return len(self._windows)
