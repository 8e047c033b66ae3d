"""The supervisor over the real docker driver and fake engines that refuse or
hang, beside a fake exec driver: an engine failure fails that allocation's
start (driver_error, retried under its restart policy), never the round, and
hides no exec task's exit; the tasks of an engine that has not answered yet
wait to be adopted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.drivers.calls import DriverCalls, EngineLimits
from agent.drivers.docker import DockerDriver
from agent.drivers.docker_containers import container_name
from tests.agent.control_plane import until
from tests.agent.engine_fakes import EngineFake, HangingEngineFake, RefusingEngineFake
from tests.agent.fake_driver import FakeDriver
from tests.agent.supervisor_harness import NODE, Harness, alloc, kinds, task

RUNNING_STATES = {
    "web": {"state": "running", "restarts": 0, "exit_code": None, "failed": False},
}


def exec_alloc(alloc_id: str) -> dict[str, Any]:
    return alloc(alloc_id, tasks=[task("job", driver="exec", image=None, command=["sleep", "1"])])


def messages(update: dict[str, Any]) -> list[str]:
    return [e["message"] for e in update["events"]]


@pytest.fixture
def exec_driver() -> FakeDriver:
    driver = FakeDriver(NODE, name="exec")
    driver.plant("b1", "job")
    return driver


@pytest.fixture
async def refusing(exec_driver: FakeDriver) -> AsyncIterator[tuple[Harness, RefusingEngineFake]]:
    engine = RefusingEngineFake(refusing=False)
    h = Harness(drivers={"docker": DockerDriver(NODE, client=engine), "exec": exec_driver})
    try:
        yield h, engine
    finally:
        await h.close()


async def test_a_refusing_engine_fails_the_start_and_hides_no_exec_exit(
    refusing: tuple[Harness, RefusingEngineFake], exec_driver: FakeDriver
) -> None:
    h, engine = refusing
    h.sup.set_desired([alloc("a1"), exec_alloc("b1")])
    await h.sup.poll()  # the engine answered once: its tasks are not held
    engine.refusing = True  # requests.exceptions.ConnectionError from now on
    await h.settle()
    a1 = h.update("a1")
    assert kinds(a1) == ["driver_error", "restarting"]
    assert "Connection refused" in messages(a1)[0]
    assert kinds(h.update("b1")) == ["started"]  # adopted
    exec_driver.exit("b1", "job", code=3)
    await h.sup.poll()  # the engine's listing fails, exec's goes through
    await h.settle()
    assert "task exited with code 3" in messages(h.update("b1"))
    engine.refusing = False
    await h.settle()
    assert kinds(h.update("a1")) == ["driver_error", "restarting"]  # not before the delay
    h.clock.now += 5
    await h.settle()
    a1 = h.update("a1")
    assert kinds(a1) == ["driver_error", "restarting", "restarted"]
    assert a1["task_states"]["web"]["state"] == "running"


async def test_a_hung_engine_fails_the_start_at_its_deadline_and_exec_goes_on(
    exec_driver: FakeDriver,
) -> None:
    engine = HangingEngineFake()
    calls = DriverCalls()
    calls.isolate("docker", EngineLimits(timeout=0.3, threads=2))
    h = Harness(
        drivers={"docker": DockerDriver(NODE, client=engine), "exec": exec_driver}, calls=calls
    )
    try:
        h.sup.set_desired([exec_alloc("b1")])
        await h.sup.poll()
        await h.settle()  # b1 adopted
        h.sup.set_desired([alloc("a1"), exec_alloc("b1")])
        engine.hanging = True
        exec_driver.exit("b1", "job", code=3)
        polling = asyncio.ensure_future(h.sup.poll())  # the engine's listing hangs
        exited = await until(lambda: h.sup.observed[("b1", "job")].exit_code == 3)
        assert exited and not polling.done()  # seen without waiting for the engine
        await h.settle()  # the start hangs until its deadline
        a1 = h.update("a1")
        assert kinds(a1) == ["driver_error", "restarting"]
        assert "did not answer within 0.3s" in messages(a1)[0]
        assert "task exited with code 3" in messages(h.update("b1"))
        await polling
    finally:
        engine.release()
        calls.close()
        await h.close()


def planted(engine: EngineFake, alloc_id: str) -> None:
    labels = {"heroctl.alloc_id": alloc_id, "heroctl.task": "web", "heroctl.node": NODE}
    engine.plant(container_name(alloc_id, "web"), labels)


async def test_tasks_of_an_awaited_engine_wait_and_are_adopted_when_it_answers(
    exec_driver: FakeDriver,
) -> None:
    engine = EngineFake()
    planted(engine, "a1")  # the server knows it running
    planted(engine, "a2")  # the cluster wants it stopped
    h = Harness(drivers={"exec": exec_driver})
    try:
        h.sup.awaited["docker"] = h.clock.now + 300
        h.sup.set_desired(
            [
                alloc("a1", status="running", task_states=RUNNING_STATES, healthy=True),
                alloc("a2", status="running", task_states=RUNNING_STATES, desired="stop"),
                exec_alloc("b1"),
            ]
        )
        await h.sup.poll()
        await h.settle()
        # Neither started, nor judged vanished, nor reported stopped.
        assert {u["id"] for u in h.sup.pending_updates()} == {"b1"}
        h.ack()
        h.sup.add_driver(DockerDriver(NODE, client=engine))
        await h.sup.poll()
        await h.settle()
        assert engine.calls.count("create") == 0
        assert [c.status for c in engine.by_name.values()] == ["running"]  # a1's; a2 removed
        assert [u["id"] for u in h.sup.pending_updates()] == ["a2"]  # a1 adopted silently
        assert h.update("a2")["status"] == "complete"
    finally:
        await h.close()


async def test_when_the_grace_ends_the_tasks_start_and_fail_with_driver_error(
    exec_driver: FakeDriver,
) -> None:
    h = Harness(drivers={"exec": exec_driver})
    try:
        h.sup.awaited["docker"] = h.clock.now + 300
        h.sup.set_desired([alloc("a1"), exec_alloc("b1")])
        await h.sup.poll()
        assert await h.settle() == []
        h.clock.now += 300
        await h.settle()
        a1 = h.update("a1")
        (error,) = (e for e in a1["events"] if e["type"] == "driver_error")
        assert "not available on this node" in error["message"]
    finally:
        await h.close()
