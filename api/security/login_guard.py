"""Failed-login throttling per username and per client address (pure, injected clock).

After `max_per_user` failures for one username (or `max_per_address` from
one address) inside `window` seconds, further attempts are refused until the
oldest failure ages out, whatever the password. A success clears the user's
count. Together with scrypt's cost and a fixed delay on every failure, this
bounds online guessing to a few attempts per minute per account.

An attempt is counted as a failure *before* its password is checked
(`reserve`), and the count is given back only when the check succeeds
(`Attempt.succeeded`). Counting after the check let a burst of concurrent
guesses all pass the limit test while the first ones were still hashing: with
the slot taken up front, no burst gets more than the limit through to the
password check. A check that ends in an error keeps its slot, so an attacker
cannot make guesses uncounted by breaking them off.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

Key = tuple[str, str]


class Throttled(Exception):
    """Too many failures: retry after `retry_after` whole seconds (>= 1)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry in {retry_after}s")
        self.retry_after = retry_after


class Attempt:
    """One reserved login attempt: it stays counted as a failure unless it succeeds."""

    __slots__ = ("_guard", "_keys", "_at", "_username")

    def __init__(self, guard: LoginGuard, keys: list[Key], at: float, username: str | None):
        self._guard, self._keys, self._at, self._username = guard, keys, at, username

    def succeeded(self) -> None:
        """Give the slot back and clear the user's failures."""
        self._guard._succeeded(self._keys, self._at, self._username)


class LoginGuard:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        max_per_user: int = 5,
        max_per_address: int = 20,
        window: float = 300.0,
        max_keys: int = 100_000,
    ) -> None:
        self._clock = clock
        self._limits = {"user": max_per_user, "addr": max_per_address}
        self._window = window
        self._max_keys = max_keys
        self._failures: dict[Key, deque[float]] = {}

    def _recent(self, key: Key, now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self._window:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def reserve(self, username: str | None, address: str) -> Attempt:
        """Count an attempt now (as a failure until it succeeds); Throttled if
        the user's or the address's budget is spent."""
        now = self._clock()
        keys = [("addr", address)] if username is None else [("addr", address), ("user", username)]
        waits = []
        for key in keys:
            q = self._recent(key, now)
            if len(q) >= self._limits[key[0]]:
                waits.append(q[0] + self._window - now)
        if waits:
            raise Throttled(max(1, math.ceil(max(waits))))
        if len(self._failures) >= self._max_keys:
            for key in list(self._failures):
                self._recent(key, now)
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)
        return Attempt(self, keys, now, username)

    def _succeeded(self, keys: list[Key], at: float, username: str | None) -> None:
        for key in keys:
            q = self._failures.get(key)
            if q is not None and at in q:
                q.remove(at)
                if not q:
                    del self._failures[key]
        if username is not None:
            self._failures.pop(("user", username), None)
