"""The agent with a Docker engine that does not answer at its start (a fake
engine behind the real docker driver, a fake control plane): it registers
without docker, keeps probing, and once the engine answers it offers docker,
registers again and adopts the container it finds, starting nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from agent.agent import Agent
from agent.drivers.docker import DockerDriver
from agent.drivers.docker_containers import container_name
from tests.agent.control_plane import FakeControlPlane, config, until
from tests.agent.engine_fakes import RefusingEngineFake
from tests.agent.fake_driver import FakeDriver
from tests.agent.supervisor_harness import alloc

RUNNING = {"web": {"state": "running", "restarts": 0, "exit_code": None, "failed": False}}


async def rounds(agent: Agent, n: int = 5) -> None:
    for _ in range(n):  # several reconcile rounds
        agent._wake.set()
        await asyncio.sleep(0.05)


async def test_a_late_engine_is_offered_once_it_answers_and_its_containers_adopted(
    plane: tuple[FakeControlPlane, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cp, address = plane
    agent = Agent(dataclasses.replace(config(address, tmp_path), engine_probe_interval=0.1))
    engine = RefusingEngineFake(refusing=True)
    labels = {"heroctl.alloc_id": "a1", "heroctl.task": "web", "heroctl.node": agent.node_id}
    engine.plant(container_name("a1", "web"), labels)

    def build(*args: Any) -> tuple[dict[str, Any], DockerDriver]:
        return {"exec": FakeDriver(agent.node_id, name="exec")}, DockerDriver(
            agent.node_id, client=engine
        )

    monkeypatch.setattr("agent.engine_probe.build_drivers", build)
    doc = alloc("a1", status="running", task_states=RUNNING, healthy=True)
    doc["node"] = agent.node_id
    cp.put(doc)
    await agent.start()
    try:
        await until(lambda: agent.synced.is_set() and agent.supervisor.listed == {"exec"})
        await rounds(agent)
        (first,) = cp.registrations
        assert first["drivers"] == ["exec"] and first["attributes"]["driver.docker"] == "false"
        assert cp.last_update("a1") is None  # held: not failed, not restarted
        engine.refusing = False
        await until(lambda: len(cp.registrations) == 2)
        second = cp.registrations[1]
        assert second["drivers"] == ["docker", "exec"]
        assert second["attributes"]["driver.docker"] == "true"
        await until(lambda: "docker" in agent.supervisor.listed)
        await rounds(agent)
    finally:
        await agent.stop()
    assert engine.calls.count("create") == 0 and engine.calls.count("stop") == 0
    assert cp.last_update("a1") is None  # adopted as after an agent restart: nothing to say
