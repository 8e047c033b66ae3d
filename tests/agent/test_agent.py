"""The agent's side of the node protocol, against a fake control plane (an
aiohttp app that speaks the protocol and records what it hears) and a fake
driver. The real servers are exercised in tests/integration/test_workloads.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.agent import Agent
from tests.agent.control_plane import FakeControlPlane, config, until
from tests.agent.fake_driver import FakeDriver
from tests.agent.supervisor_harness import alloc, task


async def test_registers_heartbeats_and_keeps_its_id(
    plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    cp, address = plane
    agent = Agent(config(address, tmp_path), drivers={"docker": FakeDriver("x")})
    await agent.start()
    try:
        await until(lambda: len(cp.heartbeats) >= 2)
    finally:
        await agent.stop()
    (reg,) = cp.registrations
    assert reg["id"] == agent.node_id and len(agent.node_id) == 32
    assert reg["name"] == "worker-1"
    assert reg["resources"] == {"cpu": 1500, "memory": 512, "disk": 1000}
    assert reg["drivers"] == ["docker"] and reg["port_range"] == [21000, 21099]
    assert set(cp.heartbeats[0]["usage"]) == {"cpu", "memory", "disk"}
    # The token enrolls the node; everything after is said with its node credential.
    assert "Bearer ht_fake" in cp.auth
    others = cp.auth - {"Bearer ht_fake"}
    assert others and all(a.startswith(f"Bearer nn_{agent.node_id}.") for a in others)
    assert (tmp_path / "agent" / "node-id").read_text().strip() == agent.node_id
    again = Agent(config(address, tmp_path), drivers={"docker": FakeDriver("x")})
    assert again.node_id == agent.node_id
    await again.client.close()


async def test_registers_again_when_the_cluster_forgot_the_node(
    plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    cp, address = plane
    agent = Agent(config(address, tmp_path), drivers={"docker": FakeDriver("x")})
    await agent.start()
    try:
        await until(lambda: cp.heartbeats)
        cp.nodes.clear()  # e.g. restored from an old snapshot
        await until(lambda: len(cp.registrations) == 2)
        await until(lambda: agent.node_id in cp.nodes)
    finally:
        await agent.stop()


async def test_runs_what_it_is_given_and_reports_through_failures(
    plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    cp, address = plane
    minted: list[int] = []

    def token() -> str:
        minted.append(1)
        return "hs_fake"

    agent = Agent(config(address, tmp_path, token=token), drivers={})
    driver = FakeDriver(agent.node_id)
    agent._drivers = {"docker": driver}
    await agent.start()
    try:
        await until(lambda: agent.registered.is_set())
        cp.secrets = {"DB_PASSWORD": "hunter2"}
        cp.fail_reports = 3  # the first reports fail: they are retried
        doc = alloc("a1", tasks=[task(secrets={"DB_PASSWORD": "db_password"})])
        doc["node"] = agent.node_id
        doc["group_spec"]["update"] = {"min_healthy_time": 0.2, "healthy_deadline": 30}
        cp.put(doc)
        await until(lambda: (u := cp.last_update("a1")) and u["healthy"] is True)
        assert driver.count("start") == 1
        assert driver.specs[("a1", "web")].secret_env == {"DB_PASSWORD": "hunter2"}
        assert cp.secret_reads == ["a1/web"]  # the one task's secrets
        kinds = [e["type"] for r in cp.reports for u in r["updates"] for e in u["events"]]
        assert kinds.count("started") == 1  # retried, never duplicated
        assert all("hunter2" not in str(r) for r in cp.reports)
        assert cp.auth == {"Bearer hs_fake"} and minted
        # The cluster wants it stopped: the agent stops and removes it.
        cp.put({**cp.allocs["a1"], "desired_status": "stop"})
        await until(lambda: (u := cp.last_update("a1")) and u["status"] == "complete")
        assert driver.tasks == {}
        assert all(set(r) == {"node", "updates"} and r["node"] == agent.node_id for r in cp.reports)
        assert all("_seq" not in u for r in cp.reports for u in r["updates"])
    finally:
        await agent.stop()
    assert driver.count("stop") == 1  # stopping the agent stopped no task


async def test_an_agent_restart_adopts_and_reports_nothing(
    plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    cp, address = plane
    first = Agent(config(address, tmp_path), drivers={})
    driver = FakeDriver(first.node_id)
    first._drivers = {"docker": driver}
    await first.start()
    doc = alloc("a1")
    doc["node"] = first.node_id
    cp.put(doc)
    try:
        await until(lambda: (u := cp.last_update("a1")) and u["healthy"] is True, 15)
    finally:
        await first.stop()
    reports = len(cp.reports)
    second = Agent(config(address, tmp_path), drivers={"docker": driver})
    await second.start()
    try:
        await until(lambda: second.synced.is_set() and second.supervisor.polled)
        await until(lambda: len(cp.heartbeats) >= 4)
        for _ in range(5):  # several reconcile rounds
            second._wake.set()
            await asyncio.sleep(0.1)
    finally:
        await second.stop()
    assert driver.count("start") == 1
    assert len(cp.reports) == reports
