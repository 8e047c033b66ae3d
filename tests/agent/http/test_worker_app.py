"""The agent API of a worker-only node (agent.http.worker_app), in-process on
127.0.0.1 with real stores: the internal endpoints answer a server's
``hn_`` credential, and nothing else gets in."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.http.worker_app import FAILED_PER_MINUTE, start_worker_api
from agent.logs.lines import LogLine
from agent.logs.store import LogStore
from agent.metrics.store import MetricsStore
from domain.crypto import KeyMaterial
from domain.node_credentials import NODE_TOKEN_WINDOW, new_node_secret, node_token
from httpkit.local_node import LocalNode
from raft.keys import generate_cluster_key
from tests.support.cluster import free_port

NODE = uuid.uuid4().hex
SECRET = new_node_secret()


class Worker:
    def __init__(self, url: str, store: LogStore, alloc: str) -> None:
        self.url = url
        self.store = store
        self.alloc = alloc

    async def get(self, path: str, token: str | None = None, **params: str) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with (
            aiohttp.ClientSession() as s,
            s.get(self.url + path, headers=headers, params=params) as r,
        ):
            return r.status, await r.json()


def lines(n: int, start: int = 0) -> list[LogLine]:
    now = int(time.time() * 1e6)
    return [LogLine(now + i, "stdout", "main", f"line {start + i}") for i in range(n)]


@pytest.fixture
async def worker(tmp_path: Path) -> AsyncIterator[Worker]:
    store = LogStore(tmp_path / "logs")
    metrics = MetricsStore(tmp_path / "metrics", interval=1.0)
    alloc = uuid.uuid4().hex
    store.append(alloc, lines(5), job="web")
    port = free_port()
    runner = await start_worker_api(
        LocalNode(store, metrics, NODE, "worker-1"), SECRET, "127.0.0.1", port
    )
    try:
        yield Worker(f"http://127.0.0.1:{port}", store, alloc)
    finally:
        await runner.cleanup()
        store.close()
        metrics.close()


def assert_refused(status: int, body: Any, expected: int = 401) -> None:
    assert status == expected, body
    assert set(body) == {"error", "message", "request_id"}, body
    assert body["request_id"].startswith("req_")


async def test_a_servers_credential_reads_the_stores(worker: Worker) -> None:
    token = node_token(SECRET, NODE, "server-1")
    status, body = await worker.get(f"/v1/agent/logs/{worker.alloc}", token, lines="3")
    assert status == 200, body
    assert [d["line"] for d in body] == ["line 2", "line 3", "line 4"]
    status, body = await worker.get("/v1/agent/metrics/current", token)
    assert status == 200 and body["node_id"] == NODE and body["server"] == "worker-1"
    assert "api" not in body  # a worker serves no public API to count
    status, body = await worker.get(
        "/v1/agent/metrics/query", token, metric="memory", **{"from": "-5m"}
    )
    assert status == 200 and "series" in body, body
    status, body = await worker.get("/v1/agent/logs/" + uuid.uuid4().hex, token, exists="1")
    assert_refused(status, body, 404)


async def test_follow_streams_new_lines(worker: Worker) -> None:
    token = node_token(SECRET, NODE, "server-1")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{worker.url}/v1/agent/logs/{worker.alloc}"
    async with (
        aiohttp.ClientSession() as s,
        s.get(url, headers=headers, params={"lines": "1", "follow": "true"}) as r,
    ):
        assert r.status == 200 and r.content_type == "application/x-ndjson"
        first = json.loads(await r.content.readline())
        assert first["line"] == "line 4"
        worker.store.append(worker.alloc, lines(2, start=5))
        got = [json.loads(await asyncio.wait_for(r.content.readline(), 10)) for _ in range(2)]
        assert [d["line"] for d in got] == ["line 5", "line 6"]


async def test_missing_forged_expired_and_foreign_credentials_get_401(worker: Worker) -> None:
    path = f"/v1/agent/logs/{worker.alloc}"
    now = time.time()
    refused = [
        None,  # no header
        "",
        node_token(new_node_secret(), NODE, "server-1"),  # forged: another secret
        node_token(SECRET, uuid.uuid4().hex, "server-1"),  # made for another node
        node_token(SECRET, NODE, "server-1", now=now - NODE_TOKEN_WINDOW - 30),  # expired
        node_token(SECRET, NODE, "server-1", now=now + NODE_TOKEN_WINDOW + 30),
        KeyMaterial(generate_cluster_key()).server_token("server-1", NODE),  # hs_: not for a worker
        "ht_" + "x" * 43,
    ]
    for token in refused:
        status, body = await worker.get(path, token)
        assert_refused(status, body)
        assert SECRET not in json.dumps(body)
    status, body = await worker.get("/v1/jobs", node_token(SECRET, NODE, "server-1"))
    assert_refused(status, body, 404)  # nothing but the agent endpoints


async def test_failed_attempts_are_limited_per_address(worker: Worker) -> None:
    forged = node_token(new_node_secret(), NODE, "server-1")
    statuses = [
        (await worker.get("/v1/agent/metrics/current", forged))[0]
        for _ in range(FAILED_PER_MINUTE + 1)
    ]
    assert statuses[:-1] == [401] * FAILED_PER_MINUTE and statuses[-1] == 429


async def test_a_taken_port_is_an_oserror(worker: Worker) -> None:
    port = int(worker.url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        await start_worker_api(LocalNode(node_id=NODE), SECRET, "127.0.0.1", port)
