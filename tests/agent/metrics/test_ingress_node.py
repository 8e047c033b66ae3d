"""A node's ingress metrics end to end on the node: a real nginx in front of a
real aiohttp upstream on 127.0.0.1, its JSON access log read by the real
AccessLogReader, the sampler turning the reader's snapshot into rates, and the
agent API (agent.http.worker_app, over HTTP with a server's credential)
answering ``/v1/agent/metrics/current`` and ``/query?metric=requests&host=``.

The sampler's clock is injected (rounds 10 s apart, so the rates are exact);
everything else is real. What the agent itself adds (``Agent.ingress_stats``
handed to its sampler) is one line in agent/agent.py, tested with the daemon."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.http.worker_app import start_worker_api
from agent.ingress import AccessLogReader, IngressConfig, Listeners, NginxSupervisor, Route, Site
from agent.metrics.sampler import MetricsSampler
from agent.metrics.store import MetricsStore
from domain.node_credentials import new_node_secret, node_token
from httpkit.local_node import LocalNode
from tests.agent.ingress.support import Upstream, client, eventually, free_port, start_upstream
from tests.agent.metrics.support import T0, Clock

NODE = uuid.uuid4().hex
SECRET = new_node_secret()
HOST = "shop.test"


@dataclass
class Node:
    ingress_url: str
    api_url: str
    reader: AccessLogReader
    sampler: MetricsSampler
    clock: Clock

    async def agent_get(self, path: str, **params: str) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {node_token(SECRET, NODE, 'server-1')}"}
        async with (
            aiohttp.ClientSession() as s,
            s.get(self.api_url + path, headers=headers, params=params) as r,
        ):
            return r.status, await r.json()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    upstream: Upstream | None = None
    sup: NginxSupervisor | None = None
    runner = None
    store = MetricsStore(tmp_path / "metrics", interval=10)
    try:
        upstream = await start_upstream("shop")
        listeners = Listeners("127.0.0.1", free_port(), free_port(), worker_processes=1)
        site = Site(
            HOST, (Route("/", (upstream.address,)), Route("/none", ())), tls=False
        )  # /none: no allocation serves it, nginx answers 503
        sup = NginxSupervisor(tmp_path / "prefix")
        await sup.start(IngressConfig(listeners, (site,), {}))
        reader = AccessLogReader(sup.paths.access_log)
        clock = Clock()
        sampler = MetricsSampler(
            store, {}, data_dir=str(tmp_path), clock=clock, ingress_stats=reader.snapshot
        )
        port = free_port()
        runner = await start_worker_api(
            LocalNode(None, store, NODE, "worker-1"), SECRET, "127.0.0.1", port
        )
        yield Node(
            f"http://{HOST}:{listeners.http_port}",
            f"http://127.0.0.1:{port}",
            reader,
            sampler,
            clock,
        )
    finally:
        if runner is not None:
            await runner.cleanup()
        if sup is not None:
            await sup.close()
        if upstream is not None:
            await upstream.close()
        store.close()


async def test_the_agent_api_serves_the_hosts_figures_and_history(node: Node) -> None:
    await node.sampler.sample([])  # the baseline: nothing served yet
    status, body = await node.agent_get("/v1/agent/metrics/current")
    assert status == 200 and body["ingress"] == {}

    async with client() as s:
        for path in ["/page"] * 7 + ["/none"] * 2:
            async with s.get(node.ingress_url + path) as r:
                assert r.status == (503 if path == "/none" else 200)

    async def counted() -> dict[str, Any]:
        await asyncio.to_thread(node.reader.poll)  # as the agent does, off the loop
        snap = node.reader.snapshot()
        assert snap.get(HOST, {}).get("requests") == 9
        return snap

    await eventually(counted, timeout=10)  # nginx flushes its log buffer every second
    node.clock.now += 10
    await node.sampler.sample([])

    status, body = await node.agent_get("/v1/agent/metrics/current")
    assert status == 200, body
    shop = body["ingress"][HOST]
    assert shop["requests"] == 9 and shop["requests_per_second"] == 0.9
    assert shop["responses"] == {"1xx": 0, "2xx": 7, "3xx": 0, "4xx": 0, "5xx": 2}
    assert shop["bytes_sent"] > 0 and shop["bytes_received"] > 0
    assert 0 <= shop["upstream_p50_ms"] <= shop["upstream_p99_ms"]

    window = {"from": str(T0 - 60), "to": str(node.clock.now + 60)}
    status, body = await node.agent_get(
        "/v1/agent/metrics/query", metric="requests", host=HOST, **window
    )
    assert status == 200, body
    assert body["series"] == [{"labels": {"host": HOST}, "points": [[T0 + 10, 0.9]]}]
    status, body = await node.agent_get(
        "/v1/agent/metrics/query", metric="responses_5xx", host=HOST, **window
    )
    assert body["series"][0]["points"] == [[T0 + 10, 0.2]]
    status, body = await node.agent_get(
        "/v1/agent/metrics/query", metric="upstream_p99_ms", host=HOST, **window
    )
    assert body["series"][0]["points"][0][1] == shop["upstream_p99_ms"]

    for params, word in (
        ({"metric": "requests"}, "needs host"),
        ({"metric": "cpu", "host": HOST}, "ingress metrics only"),
        ({"metric": "heat", "host": HOST}, "metric must be one of"),
    ):
        status, body = await node.agent_get("/v1/agent/metrics/query", **params, **window)
        assert status == 400 and body["error"] == "invalid_parameter", body
        assert word in body["message"]
