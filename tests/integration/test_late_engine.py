"""A Docker engine that answers late (issue "Hardening", item 12): a real
heroctld whose agent's engine socket (``DOCKER_HOST``) answers only while a
small proxy to the real engine listens on it.

1. heroctld starts with no engine: its node offers no docker, a docker job
   waits; once the engine answers the node offers docker and the job's
   container runs.
2. heroctld restarts while the engine is gone again: the container keeps
   running, its allocation is neither failed nor restarted; once the engine
   answers the agent adopts that very container (and follows its log again).

Every wait polls a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, Server, wait_until
from tests.support.workloads import docker_unavailable, printer_job

_SKIP = docker_unavailable()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]

REAL_ENGINE = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")


class EngineProxy:
    """A unix socket that reaches the real engine only while open: closed,
    its path does not exist and every live connection is cut."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(REAL_ENGINE)
            with self._lock:
                self._conns += [client, engine]
            for src, dst in ((client, engine), (engine, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxy() -> Iterator[EngineProxy]:
    p = EngineProxy(f"/tmp/heroctl-late-{uuid.uuid4().hex[:8]}.sock")
    try:
        yield p
    finally:
        p.close()


def node_drivers(server: Server) -> list[str]:
    (node,) = server.get("/v1/nodes").body
    return node["drivers"]


def last_line(lines: list[dict[str, Any]]) -> int:
    numbers = [int(d["line"][5:]) for d in lines if d["line"].startswith("line ")]
    return numbers[-1] if numbers else -1


def test_a_late_engine_runs_the_job_and_adopts_its_container(
    tmp_path: Path, proxy: EngineProxy
) -> None:
    import docker

    docker_client = docker.from_env(timeout=60)  # the real engine, for the test's own looks
    # exec offered on purpose beside docker: the node registers with it before the engine answers
    env = {"DOCKER_HOST": f"unix://{proxy.path}", "HEROCTL_AGENT_DRIVERS": "docker,exec"}
    c = Cluster(tmp_path, 1, agent=True, env=env)
    c.start()
    try:
        (server,) = c.servers
        wait_until(lambda: node_drivers(server) == ["exec"], 30, message="a node without docker")
        r = server.post("/v1/jobs", printer_job("late", 1))
        assert r.status in (200, 201), r.body
        proxy.open()  # the engine answers from now on
        wait_until(lambda: "docker" in node_drivers(server), 60, message="the node offers docker")

        def running() -> dict[str, Any] | None:
            allocs = server.get("/v1/allocations?job=late").body
            return allocs[0] if len(allocs) == 1 and allocs[0]["status"] == "running" else None

        alloc = wait_until(running, 60, 0.2, message="the job's allocation running")
        (container,) = docker_client.containers.list(filters={"label": "heroctl.job=late"})
        assert container.labels["heroctl.alloc_id"] == alloc["id"]

        # The daemon restarts while the engine is gone: the task outlives both.
        server.stop()
        proxy.close()
        server.start(peers=c.peers)
        c.wait_ready()
        wait_until(lambda: node_drivers(server) == ["exec"], 30, message="docker not offered")
        container.reload()
        assert container.status == "running"
        printed = int(container.logs(tail=1).decode().split()[-1])  # "line N" of the task now
        proxy.open()
        wait_until(lambda: "docker" in node_drivers(server), 60, message="docker offered again")
        # Adopted: its log is followed again past what it printed meanwhile.
        logs = f"/v1/logs/{alloc['id']}?lines=1&type=stdout"
        wait_until(lambda: last_line(server.get(logs).body) > printed, 60, message="log resumed")
        (again,) = docker_client.containers.list(all=True, filters={"label": "heroctl.job=late"})
        assert again.id == container.id and again.status == "running"
        doc = server.get(f"/v1/allocations/{alloc['id']}").body
        assert doc["status"] == "running"
        assert doc["task_states"]["main"]["restarts"] == 0
    finally:
        c.stop()
        docker_client.close()
