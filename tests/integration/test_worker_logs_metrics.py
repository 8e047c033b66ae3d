"""Logs and metrics of allocations on a worker-only node, through a server:
a real server with no agent of its own (``--no-agent``) and a real
``heroctld agent`` process running a busybox container on a real Docker
engine. The server reaches the worker's agent API with an ``hn_``
credential made from the node secret the worker registered (sealed in the
replicated state), and the worker refuses anything else.

Every wait polls a condition with a deadline.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.crypto import KeyMaterial
from domain.node_credentials import NODE_TOKEN_WINDOW, new_node_secret, node_token
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.http import Reply, request
from tests.support.ports import port_range
from tests.support.sse import SseReader
from tests.support.worker import Worker
from tests.support.workloads import ROOT, docker_unavailable, printer_job

_SKIP = docker_unavailable()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]


class Setup:
    def __init__(self, cluster: Cluster, worker: Worker, alloc: dict[str, Any]) -> None:
        self.cluster = cluster
        self.worker = worker
        self.alloc = alloc

    @property
    def server(self) -> Server:
        return self.cluster.servers[0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("worker-logs")
    cluster = Cluster(root, 1, env={"HEROCTL_SSE_PING_INTERVAL": "1"}).start()
    env = {
        "HEROCTL_AGENT_PORT_RANGE": "{}-{}".format(*port_range(100)),
        "HEROCTL_AGENT_CPU": "1000",
        "HEROCTL_AGENT_MEMORY": "512",
        "HEROCTL_AGENT_DRIVER": "docker",
        "HEROCTL_METRICS_INTERVAL": "1",
    }
    worker = Worker(cluster, "worker-1", root, env=env).start()
    try:
        server = cluster.servers[0]
        wait_until(
            lambda: [n for n in server.get("/v1/nodes").body if n["status"] == "ready"],
            60,
            0.2,
            "the worker node ready",
        )
        assert server.post("/v1/jobs", printer_job("wprinter", 1)).status in (200, 201)

        def running() -> dict[str, Any] | None:
            allocs = server.get("/v1/allocations?job=wprinter").body
            good = [a for a in allocs if a["status"] == "running"]
            return good[0] if good else None

        alloc = wait_until(running, 90, 0.2, "the printer running on the worker")
        assert alloc["node_name"] == "worker-1"
        yield Setup(cluster, worker, alloc)
    finally:
        worker.stop()
        worker.remove_tasks()
        cluster.stop()


def numbers(lines: list[dict[str, Any]], prefix: str = "line ") -> list[int]:
    return [int(d["line"][len(prefix) :]) for d in lines if d["line"].startswith(prefix)]


def consecutive(values: list[int]) -> bool:
    return values == list(range(values[0], values[0] + len(values))) if values else True


# --- logs ---------------------------------------------------------------------------------


def test_tail_of_an_allocation_on_a_worker_through_a_server(setup: Setup) -> None:
    server, alloc = setup.server, setup.alloc
    wait_until(
        lambda: len(server.get(f"/v1/logs/{alloc['id']}?lines=all").body) >= 40,
        30,
        0.2,
        "40 lines from the worker",
    )
    r = server.get(f"/v1/logs/{alloc['id']}?lines=7")
    assert r.status == 200 and len(r.body) == 7, r.body
    lines = r.body
    assert {d["alloc"] for d in lines} == {alloc["id"]}
    assert set(lines[0]) == {"alloc", "task", "stream", "ts", "us", "line"}
    err = server.get(f"/v1/logs/{alloc['id'][:8]}?lines=5&type=stderr").body
    assert len(err) == 5 and {d["stream"] for d in err} == {"stderr"}
    assert consecutive(numbers(err, "err "))
    merged = server.get("/v1/logs?job=wprinter&lines=20")
    assert merged.status == 200 and len(merged.body) == 20
    assert merged.header("X-HeroCtl-Logs-Unavailable") is None


def test_sse_follow_shows_new_lines_of_the_worker(setup: Setup) -> None:
    server, alloc = setup.server, setup.alloc
    reader = SseReader(f"{server.url}/v1/logs?job=wprinter&stream=true", setup.cluster.token)
    try:
        assert reader.response.status == 200
        started = numbers(server.get(f"/v1/logs/{alloc['id']}?lines=1&type=stdout").body)[0]
        wait_until(
            lambda: [n for n in numbers(reader.logs()) if n > started + 30],
            60,
            0.1,
            "30 new lines in the stream",
        )
        got = numbers(reader.logs())
        assert consecutive(got), got[:50]
        assert not [e for e, _ in reader.events if e == "error"], reader.events[:5]
    finally:
        reader.close()


# --- metrics ------------------------------------------------------------------------------


def test_metrics_of_the_worker_have_real_samples(setup: Setup) -> None:
    server, alloc = setup.server, setup.alloc

    def history() -> dict[str, Any] | None:
        r = server.get(f"/v1/metrics/query?metric=memory&alloc={alloc['id']}&from=-10m")
        assert r.status == 200, r.body
        series = r.body["series"]
        return r.body if series and len(series[0]["points"]) >= 3 else None

    memory = wait_until(history, 60, 0.5, "3 samples of the allocation")
    assert memory["errors"] == [] and memory["series"][0]["node"] == "worker-1"
    assert all(0 < v < 32 for _, v in memory["series"][0]["points"]), memory
    assert time.time() - memory["series"][0]["points"][-1][0] < 30
    node = server.get("/v1/metrics/query?metric=disk&node=worker-1&from=-5m").body
    assert node["errors"] == [] and node["series"][0]["points"][-1][1] > 0

    def snapshot() -> dict[str, Any] | None:
        body = server.get("/v1/metrics").body
        (row,) = body["nodes"]
        job = next((j for j in body["jobs"] if j["name"] == "wprinter"), None)
        return body if row["memory"]["used_mb"] and job and job["memory_mb"] > 0 else None

    body = wait_until(snapshot, 30, 0.5, "the worker in the snapshot")
    assert body["nodes"][0]["name"] == "worker-1" and body["nodes"][0]["cpu"]["used_percent"] >= 0
    assert body["unreachable_nodes"] == [] and body["unreachable_servers"] == []
    assert list(body["api"]["servers"]) == [setup.server.name]  # a worker serves no public API


def test_cli_reads_logs_and_metrics_of_the_worker(setup: Setup) -> None:
    env = {
        **os.environ,
        "HEROCTL_ADDR": setup.server.url,
        "HEROCTL_TOKEN": setup.cluster.token or "",
        "XDG_CONFIG_HOME": str(ROOT / ".no-such-config"),
    }

    def heroctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = heroctl("logs", setup.alloc["id"][:8], "-n", "4", "--type", "stdout")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 4 and r.stdout.startswith("line ")
    r = heroctl("metrics", "--node", "worker-1", "--from", "-5m", "--height", "3")
    assert r.returncode == 0 and "disk (MB)" in r.stdout, r.stdout + r.stderr


# --- the worker's agent API ------------------------------------------------------------------


def worker_get(setup: Setup, path: str, token: str | None) -> Reply:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return request("GET", setup.worker.api_url + path, headers=headers)


def test_the_worker_accepts_only_the_servers(setup: Setup) -> None:
    worker = setup.worker
    secret, node_id = worker.node_secret, worker.node_id
    assert secret and node_id
    path = f"/v1/agent/logs/{setup.alloc['id']}?lines=2"
    now = time.time()
    refused = {
        "missing": None,
        "forged": node_token(new_node_secret(), node_id, "server-1"),
        "expired": node_token(secret, node_id, "server-1", now=now - NODE_TOKEN_WINDOW - 60),
        "hs_ of the cluster": KeyMaterial(setup.cluster.cluster_key).server_token(
            "server-1", node_id
        ),
        "the management token": setup.cluster.token,
    }
    for what, token in refused.items():
        r = worker_get(setup, path, token)
        assert r.status in (401, 403), (what, r.status, r.body)
        assert set(r.body) == {"error", "message", "request_id"}, (what, r.body)
    good = worker_get(setup, path, node_token(secret, node_id, "server-1"))
    assert good.status == 200 and len(good.body) == 2, good.body


def test_the_node_secret_stays_out_of_answers_state_and_logs(setup: Setup) -> None:
    server, worker = setup.server, setup.worker
    secret = worker.node_secret
    assert secret
    path = worker.data_dir / "agent" / "node-secret"
    assert path.stat().st_mode & 0o777 == 0o600
    (node,) = server.get("/v1/nodes").body
    detail = server.get(f"/v1/nodes/{node['id']}").body
    assert detail["agent_api"] == worker.api_url
    backup = server.get("/v1/operator/backup")
    assert backup.status == 200
    answers = [
        server.get("/v1/nodes").raw,
        server.get(f"/v1/nodes/{node['id']}").raw,
        server.get("/v1/events?index=0").raw,
        server.post(f"/v1/nodes/{node['id']}/eligibility", {"eligible": True}).raw,
        base64.b64decode(backup.body["snapshot"]),
        json.dumps(backup.body).encode(),
    ]
    for raw in answers:
        assert secret.encode() not in raw
    # the raft journal and snapshots on disk, and both daemons' logs
    for file in Path(server.data_dir).rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes(), file
    assert secret not in server.log() and secret not in worker.log()


def test_cli_follow_resumes_after_the_server_restarts(setup: Setup) -> None:
    """`heroctl logs -f` through the only server; the server restarts (the
    worker and its container keep going): the follower connects again and
    goes on after the last line it printed, none twice, none lost."""
    server, cluster = setup.server, setup.cluster
    env = {**os.environ, "HEROCTL_ADDR": server.url, "HEROCTL_TOKEN": cluster.token or ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "logs", setup.alloc["id"], "-f", "--type", "stdout"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(iter(proc.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        wait_until(lambda: len(out) >= 20, 30, 0.1, "20 lines before the restart")
        server.stop()
        at_restart = numbers([{"line": x.strip()} for x in out])[-1]
        server.start(peers=cluster.peers)
        cluster.wait_ready([server], timeout=60)
        wait_until(
            lambda: numbers([{"line": x.strip()} for x in list(out)])[-1] > at_restart + 40,
            60,
            0.2,
            "lines after the restart",
        )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        reader.join(10)
    got = numbers([{"line": x.strip()} for x in out])
    assert consecutive(got), [(a, b) for a, b in zip(got, got[1:], strict=False) if b != a + 1]
    assert proc.stderr is not None and "connecting again" in proc.stderr.read()
