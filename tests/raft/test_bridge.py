"""RaftBridge logic against a fake node (our batching, barriers, timeouts, retries)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from raft.bridge import RaftBridge
from raft.commands import decode_batch, new_command
from raft.errors import NoLeader, OutcomeUnknown
from raft.fsm import apply_batch
from raft.node import NOT_LEADER, OK, UNKNOWN
from raft.state import State


class FakeNode:
    """Stands in for RaftNode: records entries, completes them when told."""

    def __init__(self, bridge: RaftBridge) -> None:
        self.bridge = bridge
        self.state = State()
        self.leader: str | None = "127.0.0.1:1"
        self.entries: list[tuple[bytes, Any]] = []
        self.reads: list[Any] = []  # tokens of read-index requests
        self.index = 1
        self.sole_voter = False
        self.is_leader = True

    @property
    def commit_index(self) -> int:
        return self.index

    def propose(self, entry: bytes, token: Any) -> None:
        self.entries.append((entry, token))

    def read_index(self, token: Any) -> None:
        self.reads.append(token)

    def answer_reads(self, index: int | None = None, reason: str = OK) -> None:
        done = [(token, self.index if index is None else index, reason) for token in self.reads]
        self.reads = []
        self.bridge.on_tick(done, self.index)

    def complete_all(self, reason: str = OK) -> None:
        done = []
        for entry, token in self.entries:
            self.index += 1
            result = (
                apply_batch(self.state, decode_batch(entry), self.index) if reason == OK else None
            )
            done.append((token, result, reason))
        self.entries = []
        self.bridge.on_tick(done, self.index)


def attached(timeout: float = 2, **kw: Any) -> tuple[RaftBridge, FakeNode]:
    """A bridge on the running loop with a FakeNode attached."""
    b = RaftBridge(asyncio.get_running_loop(), timeout=timeout, **kw)
    node = FakeNode(b)
    b.attach(node)  # type: ignore[arg-type]
    return b, node


async def until(condition: Any, timeout: float = 2) -> None:
    """Poll `condition()` on the loop until it holds (TimeoutError after `timeout`)."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_writes_share_one_entry() -> None:
    b, node = attached()
    tasks = [
        asyncio.create_task(b.propose(new_command("job.upsert", job={"name": f"j{i}"})))
        for i in range(50)
    ]
    await settle()
    assert len(node.entries) == 1  # one raft entry for 50 writers
    assert len(decode_batch(node.entries[0][0])) == 50
    node.complete_all()
    results = await asyncio.gather(*tasks)
    assert all(r["ok"] for r in results) and len(node.state.table("jobs")) == 50


async def test_reads_arriving_together_share_one_read_index() -> None:
    b, node = attached()
    reads = [asyncio.create_task(b.barrier()) for _ in range(64)]
    await settle()
    assert len(node.reads) == 1 and node.entries == []  # one question, no log entry
    node.answer_reads()
    assert set(await asyncio.gather(*reads)) == {node.index}


async def test_reads_wait_for_the_read_in_flight_but_writes_do_not() -> None:
    b, node = attached()
    first = asyncio.create_task(b.barrier())
    await settle()
    later = [asyncio.create_task(b.barrier()) for _ in range(10)]
    await settle()
    assert len(node.reads) == 1  # the later reads share the next question
    write = asyncio.create_task(b.propose(new_command("job.upsert", job={"name": "w"})))
    await settle()
    assert len(node.entries) == 1  # a write leaves at once, and the later reads with it
    node.complete_all()
    await settle()
    assert all(r.done() for r in later) and (await write)["ok"] and not first.done()
    node.answer_reads()
    await first


async def test_read_after_inflight_batch_waits_for_a_new_one() -> None:
    b, node = attached(max_inflight=1)
    first = asyncio.create_task(b.barrier())
    await settle()
    second = asyncio.create_task(b.barrier())  # starts after the first question left
    await settle()
    node.answer_reads()
    await first
    await settle()
    assert not second.done() and len(node.reads) == 1
    node.answer_reads()
    await second


async def test_a_read_waits_until_its_read_index_is_applied() -> None:
    b, node = attached()
    read = asyncio.create_task(b.barrier())
    await settle()
    node.answer_reads(index=node.index + 3)  # the leader committed more than we applied
    await settle()
    assert not read.done()
    node.index += 3
    b.on_tick([], node.index)
    assert await read == node.index


async def test_a_refused_read_index_is_asked_again() -> None:
    b, node = attached()
    read = asyncio.create_task(b.barrier())
    await settle()
    node.answer_reads(reason=NOT_LEADER)  # e.g. a leader that has not committed in its term
    await until(lambda: node.reads)
    node.answer_reads()
    assert await read == node.index


async def test_unanswered_batch_times_out_with_its_outcome_unknown() -> None:
    b, node = attached(timeout=0.2)
    with pytest.raises(OutcomeUnknown):  # proposed: a leader may still commit it
        await b.propose(new_command("noop"))
    node.complete_all()  # a late answer is ignored


async def test_no_known_leader_fails_within_the_timeout() -> None:
    b, node = attached(timeout=0.2)
    node.leader = None
    with pytest.raises(NoLeader) as e:
        await b.propose(new_command("noop"))
    assert type(e.value) is NoLeader  # never proposed: nothing was done
    with pytest.raises(NoLeader):
        await b.barrier()
    assert node.entries == []


async def test_a_write_answered_with_an_unknown_outcome_stays_unknown() -> None:
    b, node = attached(timeout=0.3)
    task = asyncio.create_task(b.propose(new_command("noop")))
    await until(lambda: node.entries)
    node.leader = None  # then no leader to try it again on
    node.complete_all(UNKNOWN)
    with pytest.raises(OutcomeUnknown):
        await task


async def test_a_write_no_leader_took_is_plainly_no_leader() -> None:
    b, node = attached(timeout=0.3)
    task = asyncio.create_task(b.propose(new_command("noop")))
    await until(lambda: node.entries)
    node.leader = None
    node.complete_all(NOT_LEADER)  # refused, never in a log
    with pytest.raises(NoLeader) as e:
        await task
    assert type(e.value) is NoLeader


async def test_retry_after_not_leader_reuses_the_request_id() -> None:
    b, node = attached()
    cmd = new_command("job.upsert", job={"name": "once"})
    task = asyncio.create_task(b.propose(cmd))
    await settle()
    first = node.entries[0][0]
    node.complete_all(NOT_LEADER)

    await until(lambda: node.entries)
    assert node.entries[0][0] == first  # same bytes, same rid: applies once
    node.complete_all()
    assert (await task)["ok"]


async def test_a_sole_voter_reads_without_a_log_entry() -> None:
    b, node = attached()
    node.sole_voter = True
    node.complete_all()  # applied index 1 delivered
    node.index = 3  # committed but not yet applied here
    read = asyncio.create_task(b.barrier())
    await settle()
    assert not read.done() and node.entries == []
    node.complete_all()  # delivers applied index 3
    assert await read == 3
