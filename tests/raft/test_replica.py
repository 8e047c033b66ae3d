"""Replica.wait_for_change: wakes on the tables it watches, and a cancellation
that arrives together with the wake-up is never lost (the daemon's shutdown
wakes every waiter and cancels the tasks in the same loop iteration)."""

from __future__ import annotations

import asyncio

from raft.bridge import RaftBridge
from raft.replica import Replica, ServerIdentity
from raft.state import State


def make_replica() -> tuple[Replica, RaftBridge]:
    bridge = RaftBridge(asyncio.get_running_loop(), timeout=2)
    identity = ServerIdentity("s1", "127.0.0.1:1", "http://127.0.0.1:2")
    return Replica(identity, State(), None, bridge), bridge  # type: ignore[arg-type]


async def test_wakes_when_a_watched_table_moves() -> None:
    replica, bridge = make_replica()
    waiter = asyncio.create_task(replica.wait_for_change(("jobs",), 0, 5))
    await asyncio.sleep(0)
    replica._state.touch("nodes", 3)  # not watched
    bridge._deliver([], 3, None)
    await asyncio.sleep(0.01)
    assert not waiter.done()
    replica._state.touch("jobs", 4)
    bridge._deliver([], 4, None)
    assert await asyncio.wait_for(waiter, 1) == 4
    assert await replica.wait_for_change(("jobs",), 4, 0.01) == 4  # times out quietly


async def test_cancel_arriving_with_the_wake_up_is_not_swallowed() -> None:
    replica, bridge = make_replica()
    waiter = asyncio.create_task(replica.wait_for_change(("jobs",), 0, 30))
    await asyncio.sleep(0)
    bridge.close()  # wakes every waiter...
    waiter.cancel()  # ...and shutdown cancels the task in the same iteration
    done, _ = await asyncio.wait([waiter], timeout=1)
    assert waiter in done and waiter.cancelled()


async def test_wait_applied_cancel_with_close_is_not_swallowed() -> None:
    _, bridge = make_replica()
    waiter = asyncio.create_task(bridge.wait_applied(10, 30))
    await asyncio.sleep(0)
    bridge.close()
    waiter.cancel()
    done, _ = await asyncio.wait([waiter], timeout=1)
    assert waiter in done and waiter.cancelled()
