"""Failed-login throttling per username and per client address (pure, injected clock).

After `max_per_user` failures for one username (or `max_per_address` from
one address) inside `window` seconds, further attempts are refused until the
oldest failure ages out, whatever the password. A success clears the user's
count. Together with scrypt's cost and a fixed delay on every failure, this
bounds online guessing to a few attempts per minute per account.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


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
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self._window:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def retry_after(self, username: str | None, address: str) -> int | None:
        """Seconds to wait before another attempt is allowed, or None if allowed now."""
        now = self._clock()
        waits = []
        for key in self._keys(username, address):
            q = self._recent(key, now)
            if len(q) >= self._limits[key[0]]:
                waits.append(q[0] + self._window - now)
        return max(1, math.ceil(max(waits))) if waits else None

    def failed(self, username: str | None, address: str) -> None:
        now = self._clock()
        if len(self._failures) >= self._max_keys:
            for key in list(self._failures):
                self._recent(key, now)
        for key in self._keys(username, address):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str | None) -> None:
        if username is not None:
            self._failures.pop(("user", username), None)

    @staticmethod
    def _keys(username: str | None, address: str) -> list[tuple[str, str]]:
        keys = [("addr", address)]
        if username is not None:
            keys.append(("user", username))
        return keys
