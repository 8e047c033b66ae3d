"""The ingress end to end: three real heroctld servers (a TLS cluster) whose
embedded agents each run a real nginx on their own ports on 127.0.0.1, a job
whose group declares ``ingress: [{host: app.test, port: http, tls: off}]`` and
runs busybox's httpd in Docker, and plain HTTP requests with a Host header.

Every node serves every host: each node's ingress port answers for the
job's allocations wherever they run. Every wait polls with a deadline.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.ingress.support import processes_holding
from tests.support.cluster import Cluster, Server, free_port, wait_until
from tests.support.ingress_cluster import (
    ingress_cluster,
    ingress_port,
    nginx_missing,
    reap,
)
from tests.support.ingress_cluster import ingress_prefix as prefix
from tests.support.ports import port_range
from tests.support.worker import Worker
from tests.support.workloads import IMAGE, docker_unavailable

_SKIP = docker_unavailable() or nginx_missing()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]

JOB = "ingress-web"
HOST = "app.test"
# Each allocation's page is its own id, so a response says who served it.
PAGE = "mkdir -p /tmp/www && echo $HEROCTL_ALLOC_ID > /tmp/www/index.html && "
PAGE += "exec httpd -f -p 8080 -h /tmp/www"


def ingress_job(count: int) -> dict[str, Any]:
    return {
        "name": JOB,
        "type": "service",
        "groups": [
            {
                "name": "app",
                "count": count,
                "constraints": [{"operator": "distinct_hosts"}],
                "update": {"max_parallel": 3, "min_healthy_time": "1s", "healthy_deadline": "60s"},
                # A killed container is restarted after 10 s: its allocation
                # leaves the upstreams meanwhile.
                "restart": {"attempts": 3, "interval": "5m", "delay": "10s"},
                "ingress": [{"host": HOST, "path": "/", "port": "http", "tls": "off"}],
                "tasks": [
                    {
                        "name": "web",
                        "driver": "docker",
                        "image": IMAGE,
                        "command": ["sh", "-c", PAGE],
                        "resources": {"cpu": 100, "memory": 32},
                        "ports": [{"name": "http", "to": 8080}],
                        "check": {
                            "type": "http",
                            "port": "http",
                            "path": "/",
                            "interval": "1s",
                            "timeout": "1s",
                        },
                        "kill_timeout": "1s",
                    }
                ],
            }
        ],
    }


def get(port: int, host: str = HOST, path: str = "/") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def served_ids(port: int, requests: int = 24) -> set[str] | None:
    """The allocations that answered ``requests`` requests (None: one failed)."""
    seen = set()
    for _ in range(requests):
        status, body = get(port)
        if status != 200:
            return None
        seen.add(body.strip())
    return seen


def api(c: Cluster) -> Server:
    return c.live()[0]


def live_allocs(c: Cluster) -> list[dict[str, Any]]:
    r = api(c).get(f"/v1/allocations?job={JOB}")
    assert r.status == 200, r.body
    return [a for a in r.body if a["desired_status"] == "run"]


def wait_healthy(c: Cluster, count: int) -> set[str]:
    def ready() -> set[str] | None:
        allocs = live_allocs(c)
        good = {a["id"] for a in allocs if a["status"] == "running" and a["healthy"] is True}
        return good if len(good) == count == len(allocs) else None

    return wait_until(ready, 90, 0.2, f"{count} healthy allocations of {JOB}")


def every_node_serves_exactly(c: Cluster, expected: set[str], timeout: float = 30) -> None:
    """Each live server's ingress spreads requests over exactly ``expected``."""
    for server in c.live():
        port = ingress_port(server)
        wait_until(
            lambda port=port: served_ids(port) == expected,  # type: ignore[misc]
            timeout,
            0.2,
            f"{server.name}'s ingress (port {port}) serving exactly {sorted(expected)}",
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with ingress_cluster(tmp_path_factory.mktemp("ingress-nodes")) as c:
        yield c


def test_every_node_registers_its_ingress(cluster: Cluster) -> None:
    for server in cluster.servers:
        node = api(cluster).get(f"/v1/nodes/{server.node_id}").body
        assert node["ingress"] == {
            "enabled": True,
            "reason": None,
            "http_port": ingress_port(server),
            "https_port": int(server.env["HEROCTL_INGRESS_HTTPS_PORT"]),
            "error": None,
        }, node
        # Nothing declared yet: our 404, on every node.
        status, body = get(ingress_port(server), "unknown.test")
        assert status == 404 and "no site or route here" in body


def test_every_node_serves_the_job_and_spreads_requests_over_its_allocations(
    cluster: Cluster,
) -> None:
    r = api(cluster).post("/v1/jobs", ingress_job(3))
    assert r.status in (200, 201), r.body
    ids = wait_healthy(cluster, 3)
    every_node_serves_exactly(cluster, ids)  # 24 requests on each node reach all three
    # A host nobody declared still gets our 404.
    for server in cluster.servers:
        status, body = get(ingress_port(server), "nobody.test")
        assert status == 404 and "no site or route here" in body


def upstreams_named(server: Server, address: str) -> bool:
    """Whether the configuration the server's nginx runs names ``address``."""
    return address in (prefix(server) / "conf" / "nginx.conf").read_text()


def kill_container(alloc_id: str) -> None:
    import docker

    client = docker.from_env(timeout=60)
    try:
        for container in client.containers.list(filters={"label": f"heroctl.alloc_id={alloc_id}"}):
            container.kill()  # (none running: it is dead already)
    finally:
        client.close()


def upstream_of(c: Cluster, alloc_id: str) -> str:
    port = api(c).get(f"/v1/allocations/{alloc_id}").body["ports"]["http"]
    return f"127.0.0.1:{port}"


def test_an_allocation_whose_container_dies_leaves_the_upstreams(cluster: Cluster) -> None:
    ids = wait_healthy(cluster, 3)
    victim = sorted(ids)[0]
    address = upstream_of(cluster, victim)
    assert all(upstreams_named(s, address) for s in cluster.live())
    kill_container(victim)
    wait_until(
        lambda: not any(upstreams_named(s, address) for s in cluster.live()),
        30,
        0.2,
        f"{victim} ({address}) out of every node's nginx configuration",
    )
    for server in cluster.live():  # the others serve on
        assert served_ids(ingress_port(server)) == ids - {victim}


def test_a_restarted_allocation_comes_back_into_the_upstreams(cluster: Cluster) -> None:
    ids = wait_healthy(cluster, 3)
    victim = sorted(ids)[0]

    def task_state() -> dict[str, Any]:
        return api(cluster).get(f"/v1/allocations/{victim}").body["task_states"]["web"]

    kill_container(victim)  # unless the test above did (its restart waits 10 s)
    wait_until(
        lambda: (state := task_state())["state"] == "running" and state["restarts"] >= 1,
        60,
        0.2,
        f"{victim} restarted",
    )
    every_node_serves_exactly(cluster, ids)


def test_scaling_down_leaves_only_the_remaining_allocation(cluster: Cluster) -> None:
    r = api(cluster).post("/v1/jobs", ingress_job(1))
    assert r.status in (200, 201), r.body
    (remaining,) = wait_healthy(cluster, 1)
    every_node_serves_exactly(cluster, {remaining})


class IngressWorker(Worker):
    """A worker-only node given its ingress by ``heroctld agent``'s flags."""

    http_port = 0

    def _spawn(self, args: list[str], env: dict[str, str]) -> None:
        self.http_port = free_port()
        flags = ["--ingress-http-port", str(self.http_port)]
        flags += ["--ingress-https-port", str(free_port()), "--ingress-bind", "127.0.0.1"]
        super()._spawn([*args, *flags], env)


def test_a_worker_only_node_serves_the_ingress_too(cluster: Cluster, tmp_path: Path) -> None:
    (remaining,) = wait_healthy(cluster, 1)
    env = {
        "HEROCTL_AGENT_PORT_RANGE": "{}-{}".format(*port_range(100)),
        "HEROCTL_AGENT_CPU": "1000",
        "HEROCTL_AGENT_MEMORY": "512",
    }
    worker = IngressWorker(cluster, "worker-1", tmp_path, env=env).start()
    try:
        node_id = wait_until(lambda: worker.node_id, 30, 0.1, "the worker's node id")
        node = wait_until(
            lambda: (n := api(cluster).get(f"/v1/nodes/{node_id}").body).get("ingress") and n,
            30,
            0.2,
            "the worker registered",
        )
        assert node["ingress"]["enabled"] is True, node["ingress"]
        assert node["ingress"]["http_port"] == worker.http_port
        # Its model comes with its node credential; its nginx reaches the servers' nodes.
        wait_until(
            lambda: served_ids(worker.http_port) == {remaining},
            30,
            0.2,
            "the worker's ingress serving the job",
        )
    finally:
        worker.stop()
        worker.remove_tasks()
        reap(worker)
    assert processes_holding(prefix(worker)) == []


def test_a_stopped_server_leaves_no_nginx_behind(cluster: Cluster) -> None:
    server = cluster.servers[-1]
    assert processes_holding(prefix(server))  # its nginx runs
    assert server.stop() == 0
    assert processes_holding(prefix(server)) == []
    with pytest.raises(OSError):
        get(ingress_port(server))
