"""Leadership: controllers start and stop with leadership, and a cancelled
Leadership (the daemon shutting down) always ends.

A cancellation that is swallowed leaves a task looping after the daemon
said "stopped", and `asyncio.run` then waits for it forever (the process
ignores its SIGTERM until the supervisor kills it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from heroctld.controllers.leadership import Leadership


class FakeReplica:
    is_leader = True
    restores = 0

    def is_ready(self) -> bool:
        return True


async def wait_for_condition(fn: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not fn():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def counting(started: list[str]) -> Callable[[], Awaitable[None]]:
    """A controller that notes each start in ``started``, then runs until cancelled."""

    async def controller() -> None:
        started.append("c")
        await asyncio.Event().wait()

    return controller


async def test_controllers_follow_leadership() -> None:
    replica = FakeReplica()
    started: list[str] = []
    leadership = Leadership(replica, {"c": counting(started)})  # type: ignore[arg-type]
    task = asyncio.create_task(leadership.run(check_every=0.01))
    await wait_for_condition(lambda: started == ["c"])
    replica.is_leader = False
    await wait_for_condition(lambda: not leadership._tasks)
    replica.is_leader = True
    await wait_for_condition(lambda: started == ["c", "c"])
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)  # ends, controllers stopped
    assert task in done and task.cancelled() and not leadership._tasks


async def test_cancelled_while_stopping_a_slow_controller_still_ends() -> None:
    """Shutdown cancels Leadership while it waits for a controller to finish
    stopping (leadership was just handed over): that cancellation must not be
    mistaken for the controller's own and swallowed."""
    replica = FakeReplica()
    stopping = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopping.set()
            await asyncio.sleep(0.2)  # e.g. closing an HTTP session
            raise

    leadership = Leadership(replica, {"slow": slow_to_stop})  # type: ignore[arg-type]
    task = asyncio.create_task(leadership.run(check_every=0.01))
    await wait_for_condition(lambda: bool(leadership._tasks))
    replica.is_leader = False  # Leadership now waits in _stop()
    await asyncio.wait_for(stopping.wait(), 2)
    task.cancel()  # the daemon shuts down meanwhile
    done, _ = await asyncio.wait([task], timeout=2)
    assert task in done, "Leadership swallowed its cancellation and kept running"
    assert task.cancelled()


async def test_a_restore_restarts_the_controllers() -> None:
    """A restored backup replaced the state the controllers keep in memory."""
    replica = FakeReplica()
    started: list[str] = []
    leadership = Leadership(replica, {"c": counting(started)})  # type: ignore[arg-type]
    task = asyncio.create_task(leadership.run(check_every=0.01))
    await wait_for_condition(lambda: started == ["c"])
    replica.restores = 1
    await wait_for_condition(lambda: started == ["c", "c"])
    task.cancel()
    await asyncio.wait([task], timeout=2)
