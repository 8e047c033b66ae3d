"""API requests per second of this server, for the metrics snapshot."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from aiohttp import web


class RequestCounter:
    """API requests per second of this server, over the last minute."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.total = 0
        self._seconds: deque[list[int]] = deque()  # [second, count]

    def hit(self) -> None:
        self.total += 1
        sec = int(self.clock())
        if self._seconds and self._seconds[-1][0] == sec:
            self._seconds[-1][1] += 1
            return
        self._seconds.append([sec, 1])
        while self._seconds and self._seconds[0][0] <= sec - 60:
            self._seconds.popleft()

    def rate(self, window: int = 10) -> float:
        """Requests/s over the last ``window`` whole seconds."""
        now = int(self.clock())
        count = sum(c for s, c in self._seconds if now - window <= s < now)
        return round(count / window, 2)


REQUESTS = web.AppKey("request_counter", RequestCounter)


def count_request(request: web.Request) -> None:
    """Called by the API middleware for every request."""
    if not request.path.startswith("/v1/agent/"):  # servers talking among themselves
        request.app[REQUESTS].hit()


def setup(app: web.Application) -> None:
    app[REQUESTS] = RequestCounter()
