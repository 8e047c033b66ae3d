"""The agent's side of the node protocol, against a fake control plane (an
aiohttp app that speaks the protocol and records what it hears) and a fake
driver. The real servers are exercised in tests/integration/test_workloads.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.agent import Agent
from agent.config import AgentConfig
from tests.agent.fake_driver import FakeDriver
from tests.agent.supervisor_harness import alloc, task


class FakeControlPlane:
    """Nodes, allocations and status reports in memory; `fail_*` counters make
    the next requests of a kind answer an error."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.allocs: dict[str, dict[str, Any]] = {}
        self.index = 1
        self.changed = asyncio.Event()
        self.registrations: list[dict[str, Any]] = []
        self.heartbeats: list[dict[str, Any]] = []
        self.reports: list[dict[str, Any]] = []
        self.auth: set[str] = set()
        self.fail_reports = 0
        self.secrets: dict[str, str] = {}
        self.secret_reads: list[str] = []

    def put(self, doc: dict[str, Any]) -> None:
        self.allocs[doc["id"]] = doc
        self.index += 1
        self.changed.set()

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.post("/v1/nodes/register", self.register),
                web.post("/v1/nodes/{id}/heartbeat", self.heartbeat),
                web.get("/v1/nodes/{id}/allocations", self.watch),
                web.post("/v1/allocations/status", self.status),
                web.get("/v1/allocations/{id}/secrets", self.read_secrets),
            ]
        )
        return app

    def _seen(self, request: web.Request) -> None:
        self.auth.add(request.headers.get("Authorization", ""))

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        body = {"error": code, "message": message, "request_id": "req_fake"}
        return web.json_response(body, status=status)

    async def register(self, request: web.Request) -> web.Response:
        self._seen(request)
        body = await request.json()
        self.registrations.append(body)
        self.nodes[body["id"]] = {**body, "status": "ready", "eligibility": "eligible"}
        return web.json_response(self.nodes[body["id"]])

    async def heartbeat(self, request: web.Request) -> web.Response:
        self._seen(request)
        node = request.match_info["id"]
        if node not in self.nodes:
            return self._error(404, "node_not_found", f"node '{node}' is not registered")
        self.heartbeats.append(await request.json())
        return web.json_response({"ttl_seconds": 0.6, "status": "ready"})

    async def watch(self, request: web.Request) -> web.Response:
        self._seen(request)
        node = request.match_info["id"]
        if node not in self.nodes:
            return self._error(404, "node_not_found", f"node '{node}' is not registered")
        index = int(request.query.get("index", "0"))
        wait = float(request.query.get("wait", "1s").rstrip("s"))
        if index >= self.index:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), wait)
        mine = [a for a in self.allocs.values() if a["node"] == node]
        return web.json_response(mine, headers={"X-HeroCtl-Index": str(self.index)})

    async def status(self, request: web.Request) -> web.Response:
        self._seen(request)
        if self.fail_reports:
            self.fail_reports -= 1
            return self._error(503, "no_leader", "the cluster has no leader right now")
        body = await request.json()
        self.reports.append(body)
        for u in body["updates"]:
            doc = self.allocs.get(u["id"])
            if doc is not None:
                doc.update(status=u["status"], task_states=u["task_states"], healthy=u["healthy"])
        return web.json_response({"applied": len(body["updates"]), "refused": [], "index": 0})

    async def read_secrets(self, request: web.Request) -> web.Response:
        self._seen(request)
        self.secret_reads.append(request.match_info["id"])
        return web.json_response({"env": dict(self.secrets)})

    def last_update(self, alloc_id: str) -> dict[str, Any] | None:
        for report in reversed(self.reports):
            for u in report["updates"]:
                if u["id"] == alloc_id:
                    return u
        return None


@pytest.fixture
async def plane(unused_tcp_port: int) -> AsyncIterator[tuple[FakeControlPlane, str]]:
    cp = FakeControlPlane()
    runner = web.AppRunner(cp.app(), shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    try:
        yield cp, f"127.0.0.1:{unused_tcp_port}"
    finally:
        await runner.cleanup()


def config(address: str, data_dir: Path, token: Any = "ht_fake") -> AgentConfig:
    return AgentConfig(
        servers=[address],
        token=token,
        node_name="worker-1",
        data_dir=str(data_dir),
        port_range=(21000, 21099),
        cpu=1500,
        memory=512,
        disk=1000,
        watch_wait=1.0,
        poll_interval=0.1,
        report_debounce=0.02,
        retry_min=0.05,
        retry_max=0.2,
    )


async def until(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


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
    assert cp.auth == {"Bearer ht_fake"}
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
        assert cp.secret_reads == ["a1"]
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
