"""Live followers of one allocation's log: every line after a backlog.

Apart from the store because it is the other side of a thread handoff: the
store's writers are threads (one per followed output), subscribers live on
one asyncio loop. A batch appended while someone listens is queued on the
allocation with the sequence number of its first line, and one
``call_soon_threadsafe(deliver_pending, alloc)`` per burst hands the queue
over on the loop. A subscription starts after the sequence number it was
taken at, under the same lock as its backlog (:meth:`LogStore.subscribe`),
so there is neither a gap nor a duplicate between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING

from agent.logs.lines import LogLine

if TYPE_CHECKING:
    from agent.logs.store import AllocLog

__all__ = ["SUBSCRIPTION_BUFFER", "Subscription", "deliver_pending"]

SUBSCRIPTION_BUFFER = 200_000  # lines a slow subscriber may lag before the oldest go


class Subscription:
    """New lines of one allocation, as they are appended (after a backlog)."""

    def __init__(
        self,
        alloc: AllocLog,
        start_seq: int,
        stream: str | None,
        task: str | None,
        limit: int = SUBSCRIPTION_BUFFER,
    ) -> None:
        self.alloc_id = alloc.alloc_id
        self._alloc = alloc
        self.start_seq = start_seq
        self.stream = stream
        self.task = task
        self.limit = limit
        self.dropped = 0  # lines lost because this subscriber lagged more than `limit`
        self.closed = False
        self._items: deque[LogLine] = deque()
        self._event = asyncio.Event()

    def _deliver(self, lines: list[LogLine]) -> None:
        if self.closed:
            return
        if self.stream is not None or self.task is not None:
            lines = [
                ln
                for ln in lines
                if (self.stream is None or ln.stream == self.stream)
                and (self.task is None or ln.task == self.task)
            ]
            if not lines:
                return
        self._items.extend(lines)
        over = len(self._items) - self.limit
        if over > 0:
            for _ in range(over):
                self._items.popleft()
            self.dropped += over
        self._event.set()

    async def get(self, timeout: float | None = None) -> list[LogLine]:
        """The lines appended since the last call (waits for one); [] after
        ``timeout`` seconds without any."""
        if not self._items:
            self._event.clear()
            if timeout is None:
                await self._event.wait()
            else:
                with contextlib.suppress(TimeoutError):  # not wait_for: see agent.agent
                    async with asyncio.timeout(timeout):
                        await self._event.wait()
        out = list(self._items)
        self._items.clear()
        return out

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        a = self._alloc
        with a.lock:
            with contextlib.suppress(ValueError):
                a.subs.remove(self)
            if not a.subs:
                a.pending.clear()


def deliver_pending(a: AllocLog) -> None:
    """On the subscribers' loop: hand the lines appended since to each."""
    with a.lock:
        batches, a.pending = a.pending, []
        a.flush_scheduled = False
        subs = list(a.subs)
    for first, batch in batches:
        end = first + len(batch)
        for sub in subs:
            if end <= sub.start_seq:
                continue
            sub._deliver(batch[max(0, sub.start_seq - first) :])
