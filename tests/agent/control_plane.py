"""A fake control plane for the agent's tests: an aiohttp app that speaks
the node protocol (register, heartbeat, watch, status, secrets, the ingress
model) and records what it hears; the agent's test config and a polled wait."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.config import AgentConfig


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
        self.ingress: dict[str, Any] = {"sites": [], "challenges": {}}
        self.ingress_reads = 0

    def put(self, doc: dict[str, Any]) -> None:
        self.allocs[doc["id"]] = doc
        self.index += 1
        self.changed.set()

    def set_ingress(self, sites: list[dict[str, Any]], challenges: dict[str, str]) -> None:
        """What `GET /v1/nodes/{id}/ingress` answers from now on."""
        self.ingress = {"sites": sites, "challenges": challenges}
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
                web.get("/v1/nodes/{id}/ingress", self.ingress_model),
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

    async def ingress_model(self, request: web.Request) -> web.Response:
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
        self.ingress_reads += 1
        return web.json_response(self.ingress, headers={"X-HeroCtl-Index": str(self.index)})

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
        self.secret_reads.append(f"{request.match_info['id']}/{request.query.get('task')}")
        return web.json_response({"env": dict(self.secrets)})

    def last_update(self, alloc_id: str) -> dict[str, Any] | None:
        for report in reversed(self.reports):
            for u in report["updates"]:
                if u["id"] == alloc_id:
                    return u
        return None


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
