"""Node heartbeats, kept in memory on the server that receives them (the leader)."""

from __future__ import annotations

import time
from typing import Any


class Heartbeats:
    def __init__(self, ttl: float = 10.0, clock: Any = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.last: dict[str, float] = {}
        self.usage: dict[str, dict[str, Any]] = {}

    def beat(self, node_id: str, usage: dict[str, Any] | None) -> None:
        self.last[node_id] = self.clock()
        if usage is not None:
            self.usage[node_id] = usage

    def expired(self, nodes: dict[str, dict[str, Any]]) -> list[str]:
        """Ready nodes whose last heartbeat is older than the TTL (pure given the clock)."""
        now = self.clock()
        out = []
        for node_id, node in nodes.items():
            if node.get("status") != "ready":
                continue
            seen = self.last.setdefault(node_id, now)  # grace: a new leader starts the clock
            if now - seen > self.ttl:
                out.append(node_id)
        return out

    def reset(self) -> None:
        """Forget old observations (a server that just became leader)."""
        self.last.clear()
