"""DriverCalls: an engine that hangs fails its calls at their deadline, on
threads of its own (the agent's pool stays free), and a call still queued
when its deadline passes never reaches the engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent.drivers.base import DriverError, TaskSpec, TaskState
from agent.drivers.calls import DriverCalls, EngineLimits
from agent.drivers.docker import DockerDriver
from tests.agent.control_plane import until
from tests.agent.engine_fakes import HangingEngineFake
from tests.agent.fake_driver import FakeDriver

NODE = "n-calls"


@pytest.fixture
async def hung() -> AsyncIterator[tuple[DriverCalls, DockerDriver, HangingEngineFake]]:
    engine = HangingEngineFake()
    agent_pool = ThreadPoolExecutor(max_workers=2)
    calls = DriverCalls(agent_pool)
    calls.isolate("docker", EngineLimits(timeout=0.3, threads=2))
    engine.hanging = True
    try:
        yield calls, DockerDriver(NODE, client=engine), engine
    finally:
        engine.release()
        calls.close()
        agent_pool.shutdown(wait=True)


async def test_a_hung_engine_fails_each_call_at_its_deadline_and_nothing_else(
    hung: tuple[DriverCalls, DockerDriver, HangingEngineFake],
) -> None:
    calls, docker, engine = hung
    exec_driver = FakeDriver(NODE, name="exec")
    exec_driver.plant("a1", "job")
    loop = asyncio.get_running_loop()
    began = loop.time()
    # Twice as many engine calls as the engine has threads: all hang or queue.
    engine_calls = [asyncio.ensure_future(calls.list(docker)) for _ in range(4)]
    await until(lambda: engine.entered == 2)  # both engine threads are taken
    # Meanwhile exec work runs on the agent's own threads (behind the engine's
    # it would hang with them: the bounds here leave a loaded machine room).
    listed: list[TaskState] = await asyncio.wait_for(calls.list(exec_driver), 5)
    assert [st.alloc_id for st in listed] == ["a1"]
    results = await asyncio.gather(*engine_calls, return_exceptions=True)
    assert all(isinstance(r, DriverError) for r in results)
    assert "did not answer within 0.3s" in str(results[0])
    assert loop.time() - began < 10  # at their deadline: the engine never answers them
    assert engine.entered == 2  # the queued calls were dropped, never sent


async def test_a_stop_waits_the_kill_timeout_on_top(
    hung: tuple[DriverCalls, DockerDriver, HangingEngineFake],
) -> None:
    calls, docker, _ = hung
    with pytest.raises(DriverError, match=r"within 0\.8s"):
        await calls.stop(docker, "a1", "web", 0.5)


class BrokenDriver(FakeDriver):
    def start(self, spec: TaskSpec) -> TaskState:
        raise OSError(28, "No space left on device")


async def test_whatever_a_driver_raises_is_a_driver_error() -> None:
    """The exec driver writes its state file: a full disk must fail the
    start (driver_error, restart policy), not escape as an OSError."""
    spec = TaskSpec(alloc_id="a1", job="j", group="g", task="t", node=NODE, command=["true"])
    with pytest.raises(DriverError, match="No space left"):
        await DriverCalls().start(BrokenDriver(NODE, name="exec"), spec)
