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

Rainbow (an exec task: tests/support/echo_server.py, whose websocket holds
a connection through the ingress): a websocket opened on the old version
stays up while new requests reach the new one, the deployment counts the
connections the old version holds, and the old allocation stops once the
websocket closes, or at its drain_timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.test_deployments_docker import deployment_of
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.ingress_cluster import (
    ingress_cluster,
    ingress_port,
    ingress_prefix,
    nginx_missing,
    python_missing,
)
from tests.support.ingress_workloads import echo_job, staged_echo_server
from tests.support.traffic import SteadyLoad, logged, retried_upstreams
from tests.support.workloads import IMAGE, docker_unavailable

_SKIP = docker_unavailable() or nginx_missing() or python_missing()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]

HOST = "deploy.test"
JOB = "traffic"
# Each answer is "<version> <allocation id>": who served it, of which version;
# POST /cgi-bin/slow answers the same after 0.3 s (a request in flight).
SLOW_CGI = "#!/bin/sh\\necho Content-Type: text/plain\\necho\\nsleep 0.3\\necho $VERSION $HEROCTL_ALLOC_ID\\n"
PAGE = (
    "mkdir -p /tmp/www/cgi-bin && echo $VERSION $HEROCTL_ALLOC_ID > /tmp/www/index.html && "
    f"printf '{SLOW_CGI}' > /tmp/www/cgi-bin/slow && chmod +x /tmp/www/cgi-bin/slow && "
    "exec httpd -f -p 8080 -h /tmp/www"
)
LOAD = (("GET", "/"), ("POST", "/cgi-bin/slow"))


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
def echo_script() -> Iterator[Path]:
    with staged_echo_server() as script:
        yield script


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    drivers = {"HEROCTL_AGENT_DRIVERS": "docker,exec"}  # exec for the rainbow's echo server
    with ingress_cluster(tmp_path_factory.mktemp("deploy-traffic"), **drivers) as c:
        submit(c, traffic_job("0"))
        deployment_of(c, JOB, 0, "successful", timeout=90)
        wait_until(lambda: serves_only(c, "0"), 30, 0.2, "every node serving version 0")
        yield c


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


def next_version(c: Cluster) -> int:
    """The version the next submit of the job makes (each answer says its
    version: its VERSION is the job's version number)."""
    return int(api(c).get(f"/v1/jobs/{JOB}").body["version"]) + 1


def versions(bodies: list[str]) -> set[str]:
    return {b.split()[0] for b in bodies}


def assert_nothing_dropped(c: Cluster, load: SteadyLoad, since: float) -> list[dict[str, Any]]:
    """No request failed, and nginx never sent one to an upstream that did
    not answer (a retry on another upstream would hide it from the client);
    the access logs' entries of the load."""
    answers = load.snapshot()
    assert answers, "the load sent no request"
    failed = load.failures()
    assert not failed, f"{len(failed)} of {len(answers)} requests failed: {failed[:5]}"
    logs = [ingress_prefix(s) / "logs" / "access.log" for s in c.servers]
    # nginx flushes its access log every second: wait until it holds them all
    entries = wait_until(
        lambda: (e := logged(logs, HOST, since)) and len(e) >= len(answers) and e,
        30,
        0.2,
        f"{len(answers)} requests in the access logs",
    )
    retried = retried_upstreams(entries)
    assert not retried, f"nginx retried {len(retried)} requests: {retried[:3]}"
    return entries


def test_a_rolling_update_drops_no_request(cluster: Cluster) -> None:
    new = next_version(cluster)
    since = time.time()
    with SteadyLoad(HOST, ports(cluster), LOAD) as load:
        submit(cluster, traffic_job(str(new)))
        deployment_of(cluster, JOB, new, "successful", timeout=90)
        wait_until(lambda: serves_only(cluster, str(new)), 30, 0.2, f"every node serving v{new}")
    assert versions(load.bodies_since(0)) == {str(new - 1), str(new)}
    assert_nothing_dropped(cluster, load, since)
    # each old allocation stopped once every ingress let go of it and its
    # connections closed, not at a timeout
    allocs = api(cluster).get(f"/v1/allocations?job={JOB}").body
    old = [a for a in allocs if a["job_version"] == new - 1]
    assert len(old) == 3

    def stopped_events() -> list[list[dict[str, Any]]] | None:
        """Each old allocation's events once it stopped (reported after the stop)."""
        docs = [api(cluster).get(f"/v1/allocations/{a['id']}").body for a in old]
        done = all(d["status"] in ("complete", "failed", "lost") for d in docs)
        return [d["events"] for d in docs] if done else None

    for events in wait_until(stopped_events, 60, 0.2, "the old allocations stopped"):
        drained = [e["message"] for e in events if e["type"] == "drained"]
        assert drained[0] == "no node's ingress sends it requests any more", events
        assert set(drained[1:]) <= {"its connections closed"}, events


def test_a_canary_promotion_drops_no_request(cluster: Cluster) -> None:
    new = next_version(cluster)
    since = time.time()
    with SteadyLoad(HOST, ports(cluster), LOAD) as load:
        submit(cluster, traffic_job(str(new), strategy="canary"))
        waiting = deployment_of(cluster, JOB, new, "blocked-on-promotion", timeout=60)
        # the canary takes its share beside the old replicas
        mark = len(load.snapshot())
        wait_until(
            lambda: versions(load.bodies_since(mark)) == {str(new - 1), str(new)},
            30,
            0.2,
            "answers from the canary and the old replicas",
        )
        r = api(cluster).post(f"/v1/deployments/{waiting['id']}/promote")
        assert r.status == 200, r.body
        deployment_of(cluster, JOB, new, "successful", timeout=90)
        wait_until(lambda: serves_only(cluster, str(new)), 30, 0.2, f"every node serving v{new}")
    assert_nothing_dropped(cluster, load, since)


def test_blue_green_switches_all_traffic_at_once_and_drops_no_request(cluster: Cluster) -> None:
    new = next_version(cluster)
    blue, green = str(new - 1), str(new)
    since = time.time()
    with SteadyLoad(HOST, ports(cluster), LOAD) as load:
        submit(cluster, traffic_job(green, strategy="blue-green"))
        waiting = deployment_of(cluster, JOB, new, "blocked-on-promotion", timeout=60)
        healthy = [
            a
            for a in api(cluster).get(f"/v1/allocations?job={JOB}").body
            if a["desired_status"] == "run" and a["healthy"] is True
        ]
        assert sorted(a["job_version"] for a in healthy) == [new - 1] * 3 + [new] * 3
        # the green set is healthy and still gets nothing
        mark = len(load.snapshot())
        wait_until(lambda: len(load.snapshot()) > mark + 60, 30, 0.05, "60 more answers")
        assert versions(load.bodies_since(mark)) == {blue}
        switch = len(load.snapshot())
        r = api(cluster).post(f"/v1/deployments/{waiting['id']}/promote")
        assert r.status == 200, r.body
        deployment_of(cluster, JOB, new, "successful", timeout=60)
        wait_until(lambda: serves_only(cluster, green), 30, 0.2, f"every node serving v{new}")
    for port in ports(cluster):  # every node's clients moved to the green set
        assert green in versions([a.body for a in load.snapshot()[switch:] if a.port == port])
    entries = assert_nothing_dropped(cluster, load, since)
    # All at once: no nginx worker (each serves one configuration) sent requests
    # to both sets, so no node ever had blue and green in its upstreams together.
    version_of = {
        str(port): a["job_version"]
        for summary in api(cluster).get(f"/v1/allocations?job={JOB}").body
        for a in [api(cluster).get(f"/v1/allocations/{summary['id']}").body]
        for port in a["ports"].values()
    }
    served: dict[tuple[str, int], set[int]] = {}
    for e in entries:
        upstream = str(e["upstream_addr"]).rpartition(":")[2]
        served.setdefault((e["log"], e["pid"]), set()).add(version_of[upstream])
    assert {new - 1, new} <= set().union(*served.values())
    mixed = {worker: seen for worker, seen in served.items() if len(seen) > 1}
    assert not mixed, f"workers that served both sets: {mixed}"


RAINBOW_HOST = "rainbow.test"
WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=60, ws_close=10)


def rainbow_job(script: Path, version: str, drain_timeout: str) -> dict[str, Any]:
    job = echo_job("rainbow", RAINBOW_HOST, script)
    group = job["groups"][0]
    group["update"] = {
        "strategy": "rainbow",
        "drain_timeout": drain_timeout,
        "min_healthy_time": "1s",
        "healthy_deadline": "30s",
    }
    task = group["tasks"][0]
    task["env"] = {"VERSION": version}
    task["check"] = {"type": "http", "port": "http", "path": "/", "interval": "1s"}
    return job


def rainbow_alloc(c: Cluster, version: int) -> dict[str, Any]:
    (alloc,) = [
        a
        for a in api(c).get("/v1/allocations?job=rainbow").body
        if a["job_version"] == version and a["desired_status"] == "run"
    ]
    return alloc


def answered_by(port: int) -> str:
    answer = SteadyLoad(RAINBOW_HOST, [port]).one(port)
    assert answer.status == 200, answer
    return answer.body


def draining(c: Cluster, version: int) -> dict[str, Any] | None:
    """The rainbow deployment of ``version``'s older versions still draining."""
    for d in api(c).get("/v1/deployments?job=rainbow").body:
        if d["version"] == version:
            return d["groups"]["echo"].get("draining")
    return None


async def test_rainbow_keeps_an_open_connection_on_the_old_version_until_it_closes(
    cluster: Cluster, echo_script: Path
) -> None:
    port = ingress_port(cluster.servers[0])
    submit(cluster, rainbow_job(echo_script, "1", "60s"))
    deployment_of(cluster, "rainbow", 0, "successful", timeout=60)
    old = rainbow_alloc(cluster, 0)["id"]
    wait_until(lambda: answered_by(port) == old, 30, 0.2, "the ingress answering with v1")
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{port}/echo"
        ws = await session.ws_connect(url, headers={"Host": RAINBOW_HOST}, timeout=WS_TIMEOUT)
        await ws.send_str("before")
        assert (await ws.receive(timeout=10)).data == "before"
        submit(cluster, rainbow_job(echo_script, "2", "60s"))
        # the new version serves new requests while the old one holds the websocket
        new = wait_until(lambda: rainbow_alloc(cluster, 1)["id"], 30, 0.2, "version 2 placed")
        wait_until(lambda: answered_by(port) == new, 60, 0.2, "new requests reaching v2")
        held = wait_until(
            lambda: (d := draining(cluster, 1)) and d.get("0", {}).get("connections", 0) >= 1 and d,
            30,
            0.2,
            "the deployment counting the old version's open connections",
        )
        assert held["0"]["allocations"] == 1
        assert api(cluster).get(f"/v1/allocations/{old}").body["status"] == "running"
        await ws.send_str("still there")
        assert (await ws.receive(timeout=10)).data == "still there"
        await ws.close()
    # closed: the old allocation stops, and the deployment is over
    wait_until(
        lambda: api(cluster).get(f"/v1/allocations/{old}").body["status"] == "complete",
        30,
        0.2,
        "the old allocation stopped once its connection closed",
    )
    done = deployment_of(cluster, "rainbow", 1, "successful", timeout=30)
    assert not done["groups"]["echo"].get("draining")


async def test_rainbow_stops_the_old_version_at_its_drain_timeout(
    cluster: Cluster, echo_script: Path
) -> None:
    port = ingress_port(cluster.servers[1])
    submit(cluster, rainbow_job(echo_script, "3", "60s"))
    version = deployment_of(cluster, "rainbow", 2, "successful", timeout=60)["version"]
    old = rainbow_alloc(cluster, version)["id"]
    wait_until(lambda: answered_by(port) == old, 30, 0.2, "the ingress answering with v3")
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{port}/echo"
        ws = await session.ws_connect(url, headers={"Host": RAINBOW_HOST}, timeout=WS_TIMEOUT)
        submit(cluster, rainbow_job(echo_script, "4", "2s"))
        # held past the ingress's release, then stopped at the drain timeout: the
        # websocket ends with it
        message = await ws.receive(timeout=60)
        assert message.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        ), message

    # The agent reports the event after it stopped the task (the websocket may
    # close first): poll for it.
    def drained() -> list[str]:
        events = api(cluster).get(f"/v1/allocations/{old}").body["events"]
        return [e["message"] for e in events if e["type"] == "drained"]

    try:
        wait_until(lambda: any("2s passed with" in m for m in drained()), 30, 0.2, "drained")
    except TimeoutError:
        events = api(cluster).get(f"/v1/allocations/{old}").body["events"]
        raise AssertionError([e["message"] for e in events]) from None
    deployment_of(cluster, "rainbow", version + 1, "successful", timeout=30)
