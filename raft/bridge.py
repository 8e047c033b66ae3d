"""The bridge between the raft tick thread and asyncio.

Writes: `propose(cmd)` queues an encoded command; everything queued in the
same loop iteration (or while earlier batches are in flight) leaves as ONE
raft entry, so 64 concurrent writers share a round trip. Consistent reads:
`barrier()` joins the next batch to leave, or, if nobody writes, the next
read index to ask for (raft.read_index: no log entry), one at a time, so all
reads that arrive together share one round trip too; a deposed leader cannot
answer, because neither its batch commits nor a majority confirms it.

The tick thread reports completions once per tick through `on_tick`, which
hops to the loop with a single `call_soon_threadsafe`. Every wait is bounded:
a batch that gets no answer (its leader connection dropped) is failed after
`timeout`, and a request that found no leader in `timeout` gets `NoLeader`.
Retries reuse the command's request id, so the FSM applies it once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from raft.commands import MAX_BATCH_BYTES, encode_batch, encode_command
from raft.errors import NoLeader, OutcomeUnknown, RaftRefused
from raft.node import (
    DISCARDED,
    NO_LEADER,
    NOT_LEADER,
    OK,
    QUEUE_FULL,
    UNKNOWN,
    Completion,
    RaftNode,
)

log = logging.getLogger("heroctld.bridge")

RETRYABLE = {NOT_LEADER, NO_LEADER, DISCARDED, QUEUE_FULL, UNKNOWN}
TIMEOUT = "timeout"


class _Batch:
    __slots__ = ("futures", "readers", "done", "timer", "read_only")

    def __init__(self, futures: list[asyncio.Future[Any]], readers: list[asyncio.Future[Any]]):
        self.futures = futures
        self.readers = readers
        self.done = False
        self.timer: asyncio.TimerHandle | None = None
        self.read_only = False  # a read index, not a log entry


class RaftBridge:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float = 5.0,
        max_inflight: int = 8,
        max_read_inflight: int = 1,
    ):
        self.loop = loop
        self.timeout = timeout
        self.max_inflight = max_inflight
        # Read indexes asked at a time: the reads that arrive meanwhile share
        # the next one (docs/performance.md #10).
        self.max_read_inflight = max_read_inflight
        self.node: RaftNode | None = None
        self._pending: deque[tuple[bytes, asyncio.Future[Any]]] = deque()
        self._pending_bytes = 0
        self._readers: list[asyncio.Future[Any]] = []
        self._inflight = 0
        self._reads_inflight = 0  # of those, read indexes
        self._flush_scheduled = False
        self._seen: tuple[int, str | None] = (-1, None)
        self._leader_event = asyncio.Event()
        self._index_waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._waiter_ids = itertools.count()
        self.applied_index = 0
        self.closing = False
        # Called on the loop after applies are delivered (e.g. table waiters).
        self.apply_listeners: list[Callable[[], None]] = []

    def attach(self, node: RaftNode) -> None:
        self.node = node

    # --- tick thread side -------------------------------------------------
    def on_tick(self, completions: list[Completion], applied: int) -> None:
        """Called on the tick thread after every tick; hops only on news."""
        node = self.node
        leader = node.leader if node is not None else None
        seen = (applied, leader)
        if completions or seen != self._seen:
            self._seen = seen
            self.loop.call_soon_threadsafe(self._deliver, completions, applied, leader)

    # --- loop side ------------------------------------------------------------
    def _deliver(self, completions: list[Completion], applied: int, leader: str | None) -> None:
        for batch, result, reason in completions:
            self._finish(batch, result, reason)
        if applied > self.applied_index:
            self.applied_index = applied
            waiters = self._index_waiters
            while waiters and waiters[0][0] <= applied:
                _, _, fut = heapq.heappop(waiters)
                if not fut.done():  # a waiter that timed out stays until its index passes
                    fut.set_result(None)
            for listener in self.apply_listeners:
                listener()
        if leader is not None:
            self._leader_event.set()
        else:
            self._leader_event.clear()
        self._flush()

    def _finish(self, batch: _Batch, result: Any, reason: str) -> None:
        if batch.done:
            return
        batch.done = True
        self._inflight -= 1
        if batch.read_only:
            self._reads_inflight -= 1
        if batch.timer is not None:
            batch.timer.cancel()
        for i, fut in enumerate(batch.futures):
            if fut.done():
                continue
            if reason != OK:
                fut.set_result((None, reason))
            elif not isinstance(result, list):  # a membership change
                fut.set_result((result, OK))
            elif i < len(result):
                fut.set_result((result[i], OK))
            else:
                fut.set_result((None, DISCARDED))
        # A read index tells the readers which index to wait for; a batch
        # that went through the log completed once this node applied it.
        read_at = result if isinstance(result, int) and not isinstance(result, bool) else None
        for fut in batch.readers:
            if not fut.done():
                fut.set_result((reason, read_at))
        if self._pending or self._readers:
            self._schedule()

    def _schedule(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        while (self._pending or self._readers) and self._inflight < self.max_inflight:
            if not self._pending and self._reads_inflight >= self.max_read_inflight:
                break  # only reads wait: more of them share the next read index
            items: list[tuple[bytes, asyncio.Future[Any]]] = []
            size = 0
            while self._pending and (
                not items or size + len(self._pending[0][0]) <= MAX_BATCH_BYTES
            ):
                item = self._pending.popleft()
                size += len(item[0])
                items.append(item)
            self._pending_bytes -= size
            batch = _Batch([f for _, f in items], self._readers)
            self._readers = []
            self._inflight += 1
            batch.timer = self.loop.call_later(self.timeout, self._finish, batch, None, TIMEOUT)
            assert self.node is not None
            if items:
                self.node.propose(encode_batch([e for e, _ in items]), batch)
            else:  # only reads: a read index, no log entry (raft.read_index)
                batch.read_only = True
                self._reads_inflight += 1
                self.node.read_index(batch)

    async def wait_for_leader(self, deadline: float) -> None:
        while self.node is not None and self.node.leader is None:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise NoLeader("no leader is known")
            try:
                async with asyncio.timeout(remaining):  # not wait_for: see Replica.wait_for_change
                    await self._leader_event.wait()
            except TimeoutError:
                raise NoLeader("no leader is known") from None
            if self.node.leader is None:
                self._leader_event.clear()

    async def _retry_pause(self, deadline: float) -> None:
        await asyncio.sleep(min(0.05, max(0.0, deadline - self.loop.time())))
        await self.wait_for_leader(deadline)

    async def propose(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Replicate one command; returns the FSM's result for it. NoLeader when
        no leader took it in time; OutcomeUnknown once an attempt may commit
        (unanswered, or pysyncobj's unknown outcome)."""
        encoded = encode_command(cmd)
        deadline = self.loop.time() + self.timeout
        maybe_committed = False
        try:
            while True:
                await self.wait_for_leader(deadline)
                fut: asyncio.Future[Any] = self.loop.create_future()
                self._pending.append((encoded, fut))
                self._pending_bytes += len(encoded)
                self._schedule()
                result, reason = await fut
                if reason == OK:
                    return result
                maybe_committed = maybe_committed or reason in (TIMEOUT, UNKNOWN)
                if reason == TIMEOUT or self.loop.time() >= deadline:
                    raise NoLeader(f"no leader confirmed the write within {self.timeout:g}s")
                if reason not in RETRYABLE:
                    raise RaftRefused(reason)
                await self._retry_pause(deadline)
        except NoLeader as e:
            if maybe_committed and not isinstance(e, OutcomeUnknown):
                raise OutcomeUnknown(str(e)) from None
            raise

    async def barrier(self) -> int:
        """Wait until this node has applied everything committed before the call."""
        deadline = self.loop.time() + self.timeout
        node = self.node
        if node is not None and node.sole_voter and node.is_leader:
            # One voter: nobody else can have committed anything, so what this
            # server committed when the read arrived is everything there is.
            committed = node.commit_index
            if self.applied_index >= committed:  # the common case: no wait at all
                return self.applied_index
            if await self.wait_applied(committed, self.timeout):
                return self.applied_index
            raise NoLeader(f"this server did not apply index {committed} in {self.timeout:g}s")
        while True:
            await self.wait_for_leader(deadline)
            fut: asyncio.Future[Any] = self.loop.create_future()
            self._readers.append(fut)
            self._schedule()
            reason, read_at = await fut
            if reason == OK:
                if read_at is None or self.applied_index >= read_at:
                    return self.applied_index
                if await self.wait_applied(read_at, max(0.0, deadline - self.loop.time())):
                    return self.applied_index
                raise NoLeader(f"this server did not apply index {read_at} in {self.timeout:g}s")
            if reason == TIMEOUT or self.loop.time() >= deadline:
                raise NoLeader(f"no leader confirmed a read within {self.timeout:g}s")
            await self._retry_pause(deadline)

    def close(self) -> None:
        """Shutting down: wake every waiter now (blocking queries answer at once)."""
        self.closing = True
        for listener in self.apply_listeners:
            listener()
        for _, _, fut in self._index_waiters:
            if not fut.done():
                fut.set_result(None)
        self._index_waiters.clear()

    async def wait_applied(self, index: int, timeout: float) -> bool:
        """Wait until this node applied `index`; False on timeout (or when closing)."""
        if self.applied_index >= index:
            return True
        if self.closing:
            return False
        fut: asyncio.Future[None] = self.loop.create_future()
        heapq.heappush(self._index_waiters, (index, next(self._waiter_ids), fut))
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see Replica.wait_for_change
                await fut
            return True
        except TimeoutError:
            return False

    async def membership(self, action: str, address: str) -> str:
        """Add or remove a raft member; returns the completion reason."""
        assert self.node is not None
        fut: asyncio.Future[Any] = self.loop.create_future()
        batch = _Batch([fut], [])
        self._inflight += 1
        batch.timer = self.loop.call_later(self.timeout, self._finish, batch, None, TIMEOUT)
        if action == "add":
            self.node.add_member(address, batch)
        else:
            self.node.remove_member(address, batch)
        _result, reason = await fut
        return reason
