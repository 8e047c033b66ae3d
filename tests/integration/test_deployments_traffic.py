"""Traffic during deployments: three real heroctld servers whose embedded
agents run Docker containers and each a real nginx ingress on 127.0.0.1,
a job served at ``deploy.test`` (busybox httpd answering its version and
allocation id), and a constant loop of requests through every node's
ingress while the job is updated.

A rolling update, a canary promotion and a blue-green switch drop **zero**
requests: an allocation leaves every node's upstreams before its agent stops
it (the agent waits for every node's ingress to acknowledge the model that
let go of it), and a new one joins only once its check passes. The access
logs show nginx never had to retry a request on a second upstream (a
stopped allocation would have refused it). Blue-green sends nothing to the
new set before the promotion and, per client, nothing to the old set after
the first answer from the new one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent.ingress import NginxSupervisor
from tests.integration.test_deployments_docker import deployment_of
from tests.integration.test_ingress_nodes import ingress_port, prefix, reap
from tests.support.cluster import Cluster, Server, free_port, wait_until
from tests.support.traffic import SteadyLoad, logged, retried_upstreams
from tests.support.workloads import IMAGE, docker_unavailable


def _nginx_missing() -> str | None:
    found, reason = NginxSupervisor.probe()
    return None if found else reason


_SKIP = docker_unavailable() or _nginx_missing()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]

HOST = "deploy.test"
JOB = "traffic"
# Each answer is "<version> <allocation id>": who served it, of which version.
PAGE = (
    "mkdir -p /tmp/www && echo $VERSION $HEROCTL_ALLOC_ID > /tmp/www/index.html && "
    "exec httpd -f -p 8080 -h /tmp/www"
)


def traffic_job(version: str, **update: Any) -> dict[str, Any]:
    task = {
        "name": "web",
        "driver": "docker",
        "image": IMAGE,
        "command": ["sh", "-c", PAGE],
        "env": {"VERSION": version},
        "resources": {"cpu": 100, "memory": 32},
        "ports": [{"name": "http", "to": 8080}],
        "check": {"type": "http", "port": "http", "path": "/", "interval": "1s", "timeout": "1s"},
        "kill_timeout": "1s",
    }
    group = {
        "name": "app",
        "count": 3,
        "update": {
            "max_parallel": 1,
            "min_healthy_time": "1s",
            "healthy_deadline": "30s",
            "progress_deadline": "60s",
            **update,
        },
        "ingress": [{"host": HOST, "port": "http", "tls": "off"}],
        "tasks": [task],
    }
    return {"name": JOB, "type": "service", "groups": [group]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("deploy-traffic"), 3, agent=True)
    for server in c.servers:
        server.env["HEROCTL_INGRESS_HTTP_PORT"] = str(free_port())
        server.env["HEROCTL_INGRESS_HTTPS_PORT"] = str(free_port())
        server.env["HEROCTL_INGRESS_BIND"] = "127.0.0.1"
    try:
        c.start()
        wait_until(
            lambda: len([n for n in api(c).get("/v1/nodes").body if n["status"] == "ready"]) == 3,
            30,
            0.2,
            "3 ready nodes",
        )
        submit(c, traffic_job("1"))
        deployment_of(c, JOB, 0, "successful", timeout=90)
        wait_until(lambda: serves_only(c, "1"), 30, 0.2, "every node serving version 1")
        yield c
    finally:
        c.stop()
        for server in c.servers:
            reap(server)


def api(c: Cluster) -> Server:
    return c.live()[0]


def submit(c: Cluster, job: dict[str, Any]) -> None:
    r = api(c).post("/v1/jobs", job)
    assert r.status in (200, 201), r.body


def ports(c: Cluster) -> list[int]:
    return [ingress_port(s) for s in c.servers]


def serves_only(c: Cluster, version: str, requests: int = 6) -> bool:
    """Whether every node's ingress answers ``requests`` times with ``version``."""
    load = SteadyLoad(HOST, ports(c))
    for port in ports(c):
        for _ in range(requests):
            answer = load.one(port)
            if answer.status != 200 or answer.body.split()[0] != version:
                return False
    return True


def versions(bodies: list[str]) -> set[str]:
    return {b.split()[0] for b in bodies}


def assert_nothing_dropped(c: Cluster, load: SteadyLoad, since: float) -> None:
    """No request failed, and nginx never sent one to an upstream that did
    not answer (a retry on another upstream would hide it from the client)."""
    answers = load.snapshot()
    assert answers, "the load sent no request"
    failed = load.failures()
    assert not failed, f"{len(failed)} of {len(answers)} requests failed: {failed[:5]}"
    logs = [prefix(s) / "logs" / "access.log" for s in c.servers]
    # nginx flushes its access log every second: wait until it holds them all
    entries = wait_until(
        lambda: (e := logged(logs, HOST, since)) and len(e) >= len(answers) and e,
        30,
        0.2,
        f"{len(answers)} requests in the access logs",
    )
    retried = retried_upstreams(entries)
    assert not retried, f"nginx retried {len(retried)} requests: {retried[:3]}"


def test_a_rolling_update_drops_no_request(cluster: Cluster) -> None:
    since = time.time()
    with SteadyLoad(HOST, ports(cluster)) as load:
        submit(cluster, traffic_job("2"))
        deployment_of(cluster, JOB, 1, "successful", timeout=90)
        wait_until(lambda: serves_only(cluster, "2"), 30, 0.2, "every node serving version 2")
    assert versions(load.bodies_since(0)) == {"1", "2"}
    assert_nothing_dropped(cluster, load, since)
    # each old allocation stopped once every ingress let go of it, not at a timeout
    old = [a for a in api(cluster).get(f"/v1/allocations?job={JOB}").body if a["job_version"] == 0]
    assert len(old) == 3
    for a in old:
        events = api(cluster).get(f"/v1/allocations/{a['id']}").body["events"]
        drained = [e["message"] for e in events if e["type"] == "drained"]
        assert drained == ["no node's ingress sends it requests any more"], events


def test_a_canary_promotion_drops_no_request(cluster: Cluster) -> None:
    since = time.time()
    with SteadyLoad(HOST, ports(cluster)) as load:
        submit(cluster, traffic_job("3", strategy="canary"))
        waiting = deployment_of(cluster, JOB, 2, "blocked-on-promotion", timeout=60)
        # the canary takes its share beside the old replicas
        mark = len(load.snapshot())
        wait_until(
            lambda: versions(load.bodies_since(mark)) == {"2", "3"},
            30,
            0.2,
            "answers from the canary and the old replicas",
        )
        r = api(cluster).post(f"/v1/deployments/{waiting['id']}/promote")
        assert r.status == 200, r.body
        deployment_of(cluster, JOB, 2, "successful", timeout=90)
        wait_until(lambda: serves_only(cluster, "3"), 30, 0.2, "every node serving version 3")
    assert_nothing_dropped(cluster, load, since)


def test_blue_green_switches_all_traffic_at_once_and_drops_no_request(cluster: Cluster) -> None:
    since = time.time()
    with SteadyLoad(HOST, ports(cluster)) as load:
        submit(cluster, traffic_job("4", strategy="blue-green"))
        waiting = deployment_of(cluster, JOB, 3, "blocked-on-promotion", timeout=60)
        healthy = [
            a
            for a in api(cluster).get(f"/v1/allocations?job={JOB}").body
            if a["desired_status"] == "run" and a["healthy"] is True
        ]
        assert sorted(a["job_version"] for a in healthy) == [2, 2, 2, 3, 3, 3]
        # the green set is healthy and still gets nothing
        mark = len(load.snapshot())
        wait_until(lambda: len(load.snapshot()) > mark + 60, 30, 0.05, "60 more answers")
        assert versions(load.bodies_since(mark)) == {"3"}
        switch = len(load.snapshot())
        r = api(cluster).post(f"/v1/deployments/{waiting['id']}/promote")
        assert r.status == 200, r.body
        deployment_of(cluster, JOB, 3, "successful", timeout=60)
        wait_until(lambda: serves_only(cluster, "4"), 30, 0.2, "every node serving version 4")
    # each node's client: once the green set answered, the blue one never again
    for port in ports(cluster):
        seen = [a.body.split()[0] for a in load.snapshot()[switch:] if a.port == port]
        first_green = seen.index("4")
        assert set(seen[first_green:]) == {"4"}, f"port {port} went back to blue: {seen}"
    assert_nothing_dropped(cluster, load, since)
