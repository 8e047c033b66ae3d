"""The ingress over HTTPS with automatic certificates, end to end and with
real parts only: three heroctld servers whose embedded agents run Docker
(and exec, enabled on purpose) and each a real nginx on its own ports on
127.0.0.1, and a real pebble (Let's Encrypt's test CA).

pebble's validator connects to 127.0.0.1 on its ``httpPort``: that is
server-1's ingress HTTP port, so the CA reaches one node, as a CA reaching
whichever node DNS names would; the challenge is replicated, so any node
could answer it. Every HTTPS request connects to 127.0.0.1 on one node's
port with the site's name in SNI and verifies the chain against pebble's
root (tests/support/ingress_https.py).

The cluster is shared by the module; the disruptive tests (a leader killed
mid-order, a node restarted) come last. Every wait polls with a deadline.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from raft.state import State
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.ingress_cluster import nginx_missing, python_missing, wait_ingress_serving
from tests.support.ingress_https import LoopbackResolver, http_get, https_get, verifying_context
from tests.support.ingress_workloads import (
    echo_job,
    health_file,
    staged_echo_server,
    web_job,
)
from tests.support.pebble import Pebble, free_port, running_pebble
from tests.support.workloads import docker_unavailable

_SKIP = docker_unavailable() or nginx_missing() or python_missing()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]

DOMAIN = "example.test"
APP_HOST = f"app.{DOMAIN}"
WS_HOST = f"ws.{DOMAIN}"
LATE_HOST = f"late.{DOMAIN}"
MANAGE_HOST = f"manage.{DOMAIN}"  # HEROCTL_API_DOMAIN
WEB_JOB, ECHO_JOB = "https-web", "https-echo"


@dataclass
class Env:
    cluster: Cluster
    pebble: Pebble
    context: ssl.SSLContext  # trusts pebble's root only
    script: Path  # the echo server, readable by nobody

    def api(self) -> Server:
        return self.cluster.live()[0]


def http_port(server: Server) -> int:
    return int(server.env["HEROCTL_INGRESS_HTTP_PORT"])


def https_port(server: Server) -> int:
    return int(server.env["HEROCTL_INGRESS_HTTPS_PORT"])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("ingress-https")
    validator_port = free_port()
    with (
        staged_echo_server() as script,
        running_pebble(root / "pebble", validator_port, free_port()) as pebble,
    ):
        settings = {
            "HEROCTL_ACME_DIRECTORY": pebble.directory_url,
            "HEROCTL_ACME_CA_BUNDLE": pebble.ca_bundle,
            "HEROCTL_ACME_EMAIL": f"ops@{DOMAIN}",
            "HEROCTL_API_DOMAIN": DOMAIN,
            "HEROCTL_AGENT_DRIVERS": "docker,exec",  # exec on purpose, for the echo job
        }
        (root / "cluster").mkdir()
        cluster = Cluster(root / "cluster", 3, agent=True, env=settings)
        for server in cluster.servers:
            server.env["HEROCTL_INGRESS_HTTP_PORT"] = str(free_port())
            server.env["HEROCTL_INGRESS_HTTPS_PORT"] = str(free_port())
            server.env["HEROCTL_INGRESS_BIND"] = "127.0.0.1"
        cluster.servers[0].env["HEROCTL_INGRESS_HTTP_PORT"] = str(validator_port)
        try:
            cluster.start()
            context = verifying_context(pebble.issuing_roots_pem())
            found = Env(cluster, pebble, context, script)
            wait_ingress_serving(cluster, 3)
            yield found
        finally:
            cluster.stop()


def live_allocs(env: Env, job: str) -> list[dict[str, Any]]:
    reply = env.api().get(f"/v1/allocations?job={job}")
    assert reply.status == 200, reply.body
    return [a for a in reply.body if a["desired_status"] == "run"]


def wait_healthy(env: Env, job: str, count: int) -> set[str]:
    def ready() -> set[str] | None:
        allocs = live_allocs(env, job)
        good = {a["id"] for a in allocs if a["status"] == "running" and a["healthy"] is True}
        return good if len(good) == count == len(allocs) else None

    return wait_until(ready, 90, 0.2, f"{count} healthy allocations of {job}")


@pytest.fixture(scope="module")
def web(env: Env) -> set[str]:
    """The ids of the web job's three healthy allocations (one per node)."""
    reply = env.api().post("/v1/jobs", web_job(WEB_JOB, APP_HOST))
    assert reply.status in (200, 201), reply.body
    return wait_healthy(env, WEB_JOB, 3)


def cert_of(env: Env, host: str) -> dict[str, Any]:
    reply = env.api().get(f"/v1/ingress/{host}")
    assert reply.status == 200, reply.body
    return reply.body["cert"]


def wait_valid_cert(env: Env, host: str, timeout: float = 60, **unlike: Any) -> dict[str, Any]:
    """The host's certificate once valid (and, given ``serial=``, another
    one); a failed order fails at once (no retry here may hide one)."""

    def settled() -> dict[str, Any] | None:
        cert = cert_of(env, host)
        fresh = all(cert[k] != v for k, v in unlike.items())
        return cert if cert["status"] == "failed" or (cert["status"] == "valid" and fresh) else None

    cert = wait_until(settled, timeout, 0.1, f"a valid certificate of {host}")
    assert cert["status"] == "valid", f"the order for {host} failed: {cert['last_error']}"
    return cert


def served_by(env: Env, server: Server, host: str, sha256: str, path: str = "/") -> str:
    """The body ``server``'s ingress answers over HTTPS for ``host`` once it
    presents the certificate ``sha256`` (verified against pebble's root)."""

    def serving() -> str | None:
        answer = https_get(env.context, https_port(server), host, path)
        return answer.body if answer.leaf_sha256 == sha256 and answer.status == 200 else None

    return wait_until(serving, 30, 0.1, f"{server.name} serving {host} with {sha256[:12]}")


def served_ids(env: Env, server: Server, requests: int = 24) -> set[str] | None:
    """The allocations that answered ``requests`` HTTPS requests (None: one failed)."""
    seen = set()
    for _ in range(requests):
        answer = https_get(env.context, https_port(server), APP_HOST)
        if answer.status != 200:
            return None
        seen.add(answer.body.strip())
    return seen


def every_node_spreads_over(env: Env, expected: set[str]) -> None:
    for server in env.cluster.live():
        wait_until(
            lambda server=server: served_ids(env, server) == expected,  # type: ignore[misc]
            30,
            0.2,
            f"{server.name} spreading requests over exactly {sorted(expected)}",
        )


def test_every_node_serves_the_job_over_https_with_its_acme_certificate(
    env: Env, web: set[str]
) -> None:
    started = time.monotonic()
    cert = wait_valid_cert(env, APP_HOST)
    print(f"\n{APP_HOST}: healthy job -> valid certificate in {time.monotonic() - started:.2f}s")
    assert cert["issuer"].startswith("Pebble Intermediate CA") and cert["source"] == "acme"
    for server in env.cluster.servers:  # each on its own HTTPS port
        assert served_by(env, server, APP_HOST, cert["sha256"]).strip() in web
    print(f"{APP_HOST}: served by every node {time.monotonic() - started:.2f}s after")


def test_requests_spread_over_the_healthy_allocations_and_skip_a_failing_one(
    env: Env, web: set[str]
) -> None:
    wait_valid_cert(env, APP_HOST)
    every_node_spreads_over(env, web)
    victim = sorted(web)[0]
    health_file(victim, present=False)
    started = time.monotonic()
    every_node_spreads_over(env, web - {victim})
    (route,) = env.api().get(f"/v1/ingress/{APP_HOST}").body["routes"]
    healthy = {a["id"]: a["healthy"] for a in route["allocations"]}
    assert healthy == {i: i != victim for i in web}, healthy
    print(f"\na failing check -> out of every node's rotation in {time.monotonic() - started:.2f}s")
    health_file(victim, present=True)
    started = time.monotonic()
    every_node_spreads_over(env, web)
    print(f"its check passing again -> back in {time.monotonic() - started:.2f}s")


def test_http_redirects_to_https(env: Env, web: set[str]) -> None:
    wait_valid_cert(env, APP_HOST)
    for server in env.cluster.live():
        answer = http_get(http_port(server), APP_HOST, "/some/page?x=1")
        assert answer.status == 308, answer
        location = f"https://{APP_HOST}:{https_port(server)}/some/page?x=1"
        assert answer.header("Location") == location


@pytest.fixture(scope="module")
def echo(env: Env) -> str:
    """The echo job's one allocation (the exec driver, Debian's Python as nobody)."""
    reply = env.api().post("/v1/jobs", echo_job(ECHO_JOB, WS_HOST, env.script))
    assert reply.status in (200, 201), reply.body
    (alloc_id,) = wait_healthy(env, ECHO_JOB, 1)
    return alloc_id


async def test_a_websocket_passes_and_the_client_address_reaches_the_task(
    env: Env, echo: str
) -> None:
    cert = wait_valid_cert(env, WS_HOST)
    for server in env.cluster.live():
        assert served_by(env, server, WS_HOST, cert["sha256"]).strip() == echo
        spoofed = {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6"}
        answer = https_get(env.context, https_port(server), WS_HOST, "/headers", spoofed)
        assert answer.status == 200, answer
        seen = {k.lower(): v for k, v in json.loads(answer.body).items()}
        assert seen["x-forwarded-for"] == "127.0.0.1", seen  # the client's own is not trusted
        assert seen["x-real-ip"] == "127.0.0.1", seen
        assert seen["x-forwarded-proto"] == "https", seen
        assert seen["x-forwarded-host"] == WS_HOST, seen
    connector = aiohttp.TCPConnector(resolver=LoopbackResolver())
    async with aiohttp.ClientSession(connector=connector) as session:
        for server in env.cluster.live():
            url = f"wss://{WS_HOST}:{https_port(server)}/echo"
            timeout = aiohttp.ClientWSTimeout(ws_receive=10, ws_close=10)
            async with session.ws_connect(url, ssl=env.context, timeout=timeout) as ws:
                for message in ("hello", "é" * 300, "x" * 70_000):  # short, 16-bit, 64-bit lengths
                    await ws.send_str(message)
                    reply = await ws.receive(timeout=10)
                    assert reply.type == aiohttp.WSMsgType.TEXT and reply.data == message
                await ws.close()
            assert ws.close_code == 1000


def test_the_api_answers_over_https_on_its_own_domain(env: Env) -> None:
    token = {"Authorization": f"Bearer {env.cluster.token}"}
    leader = env.cluster.leader().name
    for server in env.cluster.live():

        def status(server: Server = server) -> dict[str, Any] | None:
            answer = https_get(
                env.context, https_port(server), MANAGE_HOST, "/v1/cluster/status", token
            )
            return json.loads(answer.body) if answer.status == 200 else None

        body = wait_until(status, 60, 0.2, f"{server.name} serving the API on {MANAGE_HOST}")
        assert body["leader"] == leader and body["healthy"] is True, body
    # Without the token, the API (not the ingress) refuses.
    answer = https_get(env.context, https_port(env.api()), MANAGE_HOST, "/v1/cluster/status")
    assert answer.status in (401, 403), answer


def cert_events(env: Env, host: str) -> list[dict[str, Any]]:
    reply = env.api().get("/v1/events?topic=cert")
    assert reply.status == 200, reply.body
    return [e for e in reply.body if e["data"].get("host") == host]


def test_a_renewal_on_request_is_announced_and_served_by_every_node(
    env: Env, web: set[str]
) -> None:
    before = wait_valid_cert(env, APP_HOST)
    reply = env.api().post(f"/v1/ingress/{APP_HOST}/renew")
    assert reply.status == 202, reply.body
    started = time.monotonic()
    after = wait_valid_cert(env, APP_HOST, serial=before["serial"], sha256=before["sha256"])
    renewed = wait_until(
        lambda: [e for e in cert_events(env, APP_HOST) if e["data"]["serial"] == after["serial"]],
        10,
        0.1,
        "cert.renewed of the new serial",
    )
    assert [e["type"] for e in renewed] == ["cert.renewed"] and renewed[0]["data"]["renewal"]
    for server in env.cluster.live():
        served_by(env, server, APP_HOST, after["sha256"])
    print(f"\nrenew asked -> new serial served by every node in {time.monotonic() - started:.2f}s")


def backup_certs(env: Env) -> dict[str, dict[str, Any]]:
    reply = env.api().get("/v1/operator/backup")
    assert reply.status == 200, reply.body
    return dict(State.from_bytes(base64.b64decode(reply.body["snapshot"])).table("certs"))


def challenge_served(server: Server) -> bool:
    """Whether the node's nginx configuration answers an http-01 challenge now."""
    conf = server.data_dir / "agent" / "ingress" / "conf" / "nginx.conf"
    return '"/.well-known/acme-challenge/' in conf.read_text()


@contextlib.contextmanager
def ingress_stopped(server: Server) -> Iterator[None]:
    """The node's nginx (master and workers) stopped (SIGSTOP), continued on exit."""
    pid_file = server.data_dir / "agent" / "ingress" / "run" / "nginx.pid"
    pgid = int(pid_file.read_text().strip())
    os.killpg(pgid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pgid, signal.SIGCONT)


def test_a_leader_killed_mid_order_still_ends_with_a_served_certificate(
    env: Env, web: set[str]
) -> None:
    cluster = env.cluster
    # The leader to kill is server-2: never the node the CA reaches (server-1).
    leader = cluster.servers[1]
    if cluster.leader() is not leader:
        reply = env.api().post("/v1/raft/transfer-leadership", {"to": leader.name})
        assert reply.status == 200, reply.body
        wait_until(lambda: cluster.leader() is leader, 20, 0.1, f"{leader.name} leading")
    route = {"path": "/", "job": WEB_JOB, "group": "app", "port": "http"}
    reply = env.api().post("/v1/ingress", {"host": LATE_HOST, "routes": [route]})
    assert reply.status == 201, reply.body
    # Kill it while its order is in flight: once its challenge reached the
    # nodes, while it still waits for one node's ingress to serve it (stopped
    # here, so that the whole order cannot pass between two polls).
    with ingress_stopped(cluster.servers[2]):
        wait_until(
            lambda: any(challenge_served(s) for s in cluster.live()), 15, 0.02, "a challenge"
        )
        leader.kill()
    started = time.monotonic()
    assert cluster.leader(timeout=20) is not leader
    cert = wait_valid_cert(env, LATE_HOST, timeout=90)
    print(f"\nleader killed mid-order -> valid in {time.monotonic() - started:.2f}s")
    assert cert["last_error"] is None
    # The new leader ordered again (the killed one had not finished). It logs
    # once its write returned, which can be after the API shows the certificate.
    new_leader = cluster.leader()
    stored = f"stored the certificate of {LATE_HOST}"
    wait_until(lambda: stored in new_leader.log(), 15, 0.1, "the new leader's stored line")
    assert stored not in leader.log()
    for server in cluster.live():
        assert served_by(env, server, LATE_HOST, cert["sha256"]).strip() in web
    # The killed server comes back and serves it too.
    leader.start(peers=cluster.peers)
    cluster.wait_ready()
    served_by(env, leader, LATE_HOST, cert["sha256"])
    wait_until(
        lambda: not any(challenge_served(s) for s in cluster.live()), 15, 0.1, "no challenge"
    )


def test_a_restarted_node_serves_the_same_certificates_without_a_new_order(
    env: Env, web: set[str]
) -> None:
    cluster = env.cluster
    hosts = (APP_HOST, WS_HOST, LATE_HOST)
    certs = {host: wait_valid_cert(env, host) for host in hosts}
    rows = backup_certs(env)
    events = {host: len(cert_events(env, host)) for host in hosts}
    server = cluster.leader()  # a new leader must not order again either
    assert server.stop() == 0
    with pytest.raises(OSError):
        https_get(env.context, https_port(server), APP_HOST)
    started = time.monotonic()
    server.start(peers=cluster.peers)
    cluster.wait_ready()
    for host in hosts:
        served_by(env, server, host, certs[host]["sha256"])
    print(f"\nnode restarted -> serving its certificates in {time.monotonic() - started:.2f}s")
    # A barrier: a renewal asked now is done after the new leader's controller
    # looked at every host; once no challenge is left, no order is in flight.
    assert env.api().post(f"/v1/ingress/{WS_HOST}/renew").status == 202
    wait_valid_cert(env, WS_HOST, serial=certs[WS_HOST]["serial"])
    wait_until(lambda: not any(challenge_served(s) for s in cluster.live()), 15, 0.1, "no order")
    after = backup_certs(env)
    for host in (APP_HOST, LATE_HOST, MANAGE_HOST):
        for field in ("serial", "sha256", "obtained_at"):
            assert after[host][field] == rows[host][field], (host, field)
    assert {host: len(cert_events(env, host)) for host in (APP_HOST, LATE_HOST)} == {
        host: events[host] for host in (APP_HOST, LATE_HOST)
    }
