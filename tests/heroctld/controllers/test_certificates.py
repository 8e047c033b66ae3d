"""The leader's certificate controller: its decisions (pure), its wait until
every ingress serves a challenge (real HTTP), and the whole path in a real
3-server cluster against a real pebble whose validator reaches a real
responder serving what the cluster replicates (tests/.../cluster_responder.py)."""

from __future__ import annotations

import base64
import datetime
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from domain.certificates import check_pair
from heroctld.controllers.certificate_challenges import (
    IngressEndpoint,
    ingress_endpoints,
    wait_until_served,
)
from heroctld.controllers.certificates import (
    backoff,
    due_at,
    failure_fields,
    still_requested,
    wanted_hosts,
)
from raft.state import State
from tests.heroctld.controllers.cluster_responder import ClusterChallengeResponder
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.nodes import HandNode, hand_node
from tests.support.pebble import Pebble, free_port, running_pebble

# --- decisions ---------------------------------------------------------------------------

NOW = 1_700_000_000.0


def test_the_hosts_are_the_acme_domains_and_the_api_domain() -> None:
    domains = {
        "a.example.test": {"tls": "acme"},
        "b.example.test": {"tls": "off"},
        "c.example.test": {"tls": "manual"},
    }
    assert wanted_hosts(domains, None) == {"a.example.test"}
    assert wanted_hosts(domains, "example.test") == {"a.example.test", "manage.example.test"}


def test_a_host_is_due_without_a_certificate_past_renew_after_or_on_request() -> None:
    assert due_at(None) == 0
    assert due_at({"host": "h", "status": "pending"}) == 0
    valid = {"cert_pem": "PEM", "renew_after": NOW + 100, "retry_at": 0}
    assert due_at(valid) == NOW + 100
    assert due_at({**valid, "renew_requested": True}) == 0
    # A failure's backoff holds every case back.
    assert due_at({"retry_at": NOW + 5}) == NOW + 5
    assert due_at({**valid, "renew_requested": True, "retry_at": NOW + 5}) == NOW + 5
    assert due_at({**valid, "retry_at": NOW + 500}) == NOW + 500


def test_backoff_doubles_from_its_base_up_to_its_cap() -> None:
    assert [backoff(n, 5, 3600) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff(30, 5, 3600) == 3600


def test_a_failure_keeps_a_usable_certificate_valid() -> None:
    first = failure_fields(None, "boom", NOW, 5, 3600)
    assert first == {"status": "failed", "last_error": "boom", "failures": 1, "retry_at": NOW + 5}
    usable = {"cert_pem": "PEM", "not_after": NOW + 86400, "failures": 2, "status": "valid"}
    again = failure_fields(usable, "boom", NOW, 5, 3600)
    assert again["status"] == "valid" and again["failures"] == 3 and again["retry_at"] == NOW + 20
    expired = {**usable, "not_after": NOW - 1}
    assert failure_fields(expired, "boom", NOW, 5, 3600)["status"] == "failed"


def test_a_renewal_asked_during_an_order_is_kept() -> None:
    before = {"modify_index": 7, "renew_requested": True}
    assert not still_requested(before, before)  # the request the order answers
    assert still_requested(before, {"modify_index": 9, "renew_requested": True})
    assert not still_requested(None, {"modify_index": 9})


def test_only_ready_nodes_advertising_an_ingress_are_polled() -> None:
    nodes = [
        {"name": "a", "status": "ready", "address": "10.0.0.1", "ingress": {"enabled": True, "http_port": 80}},
        {"name": "b", "status": "down", "address": "10.0.0.2", "ingress": {"enabled": True, "http_port": 80}},
        {"name": "c", "status": "ready", "address": "10.0.0.3", "ingress": {"enabled": False, "http_port": 80}},
        {"name": "d", "status": "ready", "address": "10.0.0.4"},
        {"name": "e", "status": "ready", "address": "fd00::5", "ingress": {"enabled": True, "http_port": 8080}},
    ]  # fmt: skip
    found = ingress_endpoints(nodes)
    assert [e.node for e in found] == ["a", "e"]
    assert found[1].url("/x") == "http://[fd00::5]:8080/x"


# --- waiting until every ingress serves a challenge (real HTTP on loopback) --------------


async def test_wait_until_served_confirms_each_node_and_gives_up_at_its_deadline() -> None:
    served = {"tok": "tok.thumb"}
    hosts_seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        hosts_seen.append(request.host)
        value = served.get(request.match_info["token"])
        return web.Response(text=value) if value else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/.well-known/acme-challenge/{token}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        endpoint = IngressEndpoint("n1", "127.0.0.1", port)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            # Served: it returns without waiting out its deadline (30 s; the
            # bounds leave a loaded machine room, speed targets live in bench/).
            started = time.monotonic()
            missing = await wait_until_served(
                session, [endpoint], "app.example.test", "tok", "tok.thumb", 30
            )
            assert missing == [] and time.monotonic() - started < 10
            assert hosts_seen == ["app.example.test"]  # the validator's Host
            # Never served: it gives up at its deadline (plus one check in flight, 2 s at most).
            started = time.monotonic()
            missing = await wait_until_served(
                session, [endpoint], "app.example.test", "other", "other.thumb", 0.5
            )
            assert missing == [endpoint] and 0.5 <= time.monotonic() - started < 0.5 + 2 + 5
    finally:
        await runner.cleanup()


# --- a real cluster, a real pebble --------------------------------------------------------

API_DOMAIN = "example.test"
MANAGE_HOST = f"manage.{API_DOMAIN}"


@dataclass
class AcmeCluster:
    cluster: Cluster
    pebble: Pebble
    responder: ClusterChallengeResponder
    node: HandNode

    def any(self) -> Server:
        return self.cluster.live()[0]


def web_job(name: str, host: str) -> dict[str, Any]:
    return {
        "name": name,
        "groups": [
            {
                "name": "web",
                "count": 0,  # nothing to place: the tests are about the certificate
                "ingress": [{"host": host, "path": "/", "port": "http"}],
                "tasks": [
                    {"name": "httpd", "image": "busybox", "ports": [{"name": "http", "to": 80}]}
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeCluster]:
    root = tmp_path_factory.mktemp("certificates")
    responder = ClusterChallengeResponder().start()
    try:
        with running_pebble(root / "pebble", responder.port, free_port()) as pebble:
            env = {
                "HEROCTL_ACME_DIRECTORY": pebble.directory_url,
                "HEROCTL_ACME_CA_BUNDLE": pebble.ca_bundle,
                "HEROCTL_ACME_EMAIL": "ops@example.test",
                "HEROCTL_API_DOMAIN": API_DOMAIN,
            }
            (root / "cluster").mkdir()
            cluster = Cluster(root / "cluster", 3, env=env)
            try:
                cluster.start()
                server = cluster.leader()
                ingress = {"enabled": True, "http_port": responder.port}
                node = hand_node(server, address="127.0.0.1", ingress=ingress)
                responder.follow(node, cluster.live)
                yield AcmeCluster(cluster, pebble, responder, node)
            finally:
                cluster.stop()
    finally:
        responder.stop()


def cert_of(acme: AcmeCluster, host: str) -> dict[str, Any]:
    reply = acme.any().get(f"/v1/ingress/{host}")
    assert reply.status == 200, reply.body
    return reply.body["cert"]


def wait_cert(acme: AcmeCluster, host: str, check: Any, timeout: float = 60.0) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        cert = cert_of(acme, host)
        return cert if check(cert) else None

    return wait_until(ready, timeout, 0.1, f"the certificate of {host}")


def cert_events(acme: AcmeCluster, host: str, kind: str) -> list[dict[str, Any]]:
    reply = acme.any().get(f"/v1/events?topic={kind}")
    assert reply.status == 200, reply.body
    return [e for e in reply.body if e["data"].get("host") == host]


def served_site(acme: AcmeCluster, host: str) -> dict[str, Any]:
    """What every node's ingress serves for ``host`` (its chain and key, opened for the node)."""
    return {s["host"]: s for s in node_model(acme)["sites"]}[host]


def node_model(acme: AcmeCluster) -> dict[str, Any]:
    """`GET /v1/nodes/:id/ingress` as the hand node (from a server still alive)."""
    path = f"/v1/nodes/{acme.node.id}/ingress"
    reply = acme.any().get(path, headers=acme.node.headers())
    assert reply.status == 200, reply.body
    return reply.body


def backup(acme: AcmeCluster) -> tuple[bytes, State]:
    reply = acme.any().get("/v1/operator/backup")
    assert reply.status == 200, reply.body
    data = base64.b64decode(reply.body["snapshot"])
    return data, State.from_bytes(data)


def verify_chain(chain_pem: str, roots_pem: str, host: str) -> None:
    chain = x509.load_pem_x509_certificates(chain_pem.encode())
    roots = x509.load_pem_x509_certificates(roots_pem.encode())
    verifier = (
        PolicyBuilder()
        .store(Store(roots))
        .time(datetime.datetime.now(datetime.UTC))
        .build_server_verifier(x509.DNSName(host))
    )
    assert verifier.verify(chain[0], chain[1:])[-1] in roots


def is_valid(cert: dict[str, Any]) -> bool:
    return cert["status"] == "valid"


def test_a_job_host_gets_a_certificate_that_verifies(acme: AcmeCluster) -> None:
    host = "shop.example.test"
    started = time.monotonic()
    assert acme.any().post("/v1/jobs", web_job("shop", host)).status == 201
    cert = wait_cert(acme, host, is_valid)
    elapsed = time.monotonic() - started
    print(f"\n{host}: job submitted -> valid certificate in the state in {elapsed:.2f}s")
    assert cert["issuer"].startswith("Pebble Intermediate CA")
    assert cert["last_error"] is None and cert["source"] == "acme"
    assert cert["not_before"] < time.time() < cert["renew_after"] < cert["not_after"]
    lifetime = cert["not_after"] - cert["not_before"]
    assert cert["renew_after"] == pytest.approx(cert["not_before"] + lifetime * 2 / 3)
    # Every node serves the chain and its key; the chain verifies up to this pebble's root.
    site = served_site(acme, host)
    verify_chain(site["cert_pem"], acme.pebble.issuing_roots_pem(), host)
    check_pair(site["cert_pem"], site["key_pem"], host, time.time())
    # The validator reached the responder for this host, which had the answer.
    assert any(h == host and status == 200 for h, _, status in acme.responder.requests)
    renewed = cert_events(acme, host, "cert.renewed")
    assert [e["data"]["serial"] for e in renewed] == [cert["serial"]]
    assert renewed[0]["data"]["renewal"] is False
    # The challenge is retracted; the account and the key are sealed in the state.
    wait_until(lambda: served_site(acme, host) and not _challenges(acme), 10, message="retracted")
    raw, state = backup(acme)
    account = state.table("acme")["account"]
    assert account["directory"] == acme.pebble.directory_url and account["url"]
    assert set(account["key"]) == {"nonce", "ciphertext"}
    assert b"PRIVATE KEY" not in raw


def _challenges(acme: AcmeCluster) -> dict[str, str]:
    return node_model(acme)["challenges"]


def test_the_api_domain_gets_a_certificate_too(acme: AcmeCluster) -> None:
    def stored() -> dict[str, Any] | None:
        row = backup(acme)[1].table("certs").get(MANAGE_HOST)
        return row if row and row.get("status") == "valid" and row.get("cert_pem") else None

    row = wait_until(stored, 60, 0.2, f"the certificate of {MANAGE_HOST}")
    assert row["hosts"] == [MANAGE_HOST] and row["failures"] == 0


def test_a_renewal_on_request_gives_a_new_serial(acme: AcmeCluster) -> None:
    host = "shop.example.test"
    before = wait_cert(acme, host, is_valid)
    account_before = backup(acme)[1].table("acme")["account"]
    reply = acme.any().post(f"/v1/ingress/{host}/renew")
    assert reply.status == 202, reply.body
    started = time.monotonic()
    after = wait_cert(acme, host, lambda c: is_valid(c) and c["serial"] != before["serial"])
    print(f"\n{host}: renew requested -> new certificate in {time.monotonic() - started:.2f}s")
    assert after["sha256"] != before["sha256"] and after["not_after"] >= before["not_after"]
    renewed = cert_events(acme, host, "cert.renewed")
    assert [e["data"]["serial"] for e in renewed][-2:] == [before["serial"], after["serial"]]
    assert renewed[-1]["data"]["renewal"] is True
    row = backup(acme)[1].table("certs")[host]
    assert row["renew_requested"] is False
    assert backup(acme)[1].table("acme")["account"] == account_before  # the same account


def test_a_failing_validation_is_recorded_and_retried_with_backoff(acme: AcmeCluster) -> None:
    host = "broken.example.test"
    acme.responder.refuse(host)  # the validator finds nothing for this host
    route = {"path": "/", "job": "shop", "group": "web", "port": "http"}
    assert acme.any().post("/v1/ingress", {"host": host, "routes": [route]}).status == 201
    failed = wait_cert(acme, host, lambda c: c["status"] == "failed" and c["last_error"])
    assert "unauthorized" in failed["last_error"] and host in failed["last_error"]
    assert "PRIVATE" not in failed["last_error"]

    def two_failures() -> list[dict[str, Any]] | None:
        events = cert_events(acme, host, "cert.failed")
        return events if len(events) >= 2 else None

    events = wait_until(two_failures, 40, 0.2, "a retried order failing again")
    assert [e["data"]["failures"] for e in events[:2]] == [1, 2]
    delays = [e["data"]["retry_at"] - e["ts"] / 1000 for e in events[:2]]
    assert delays[0] == pytest.approx(5, abs=1) and delays[1] == pytest.approx(10, abs=1)
    second_try = events[1]["ts"] / 1000 - events[0]["ts"] / 1000
    assert second_try >= 5  # not before its retry_at
    # Once the challenge is served, the next retry succeeds and clears the error.
    acme.responder.allow(host)
    cert = wait_cert(acme, host, is_valid, timeout=40)
    assert cert["last_error"] is None
    assert backup(acme)[1].table("certs")[host]["failures"] == 0


def test_a_host_served_again_soon_keeps_its_certificate(acme: AcmeCluster) -> None:
    host = "broken.example.test"
    cert = wait_cert(acme, host, is_valid)
    assert acme.any().delete(f"/v1/ingress/{host}").status == 200
    route = {"path": "/", "job": "shop", "group": "web", "port": "http"}
    assert acme.any().post("/v1/ingress", {"host": host, "routes": [route]}).status == 201
    # Served again within the grace: the same certificate at once, no new order.
    again = cert_of(acme, host)
    assert is_valid(again) and again["serial"] == cert["serial"]
    assert len(cert_events(acme, host, "cert.renewed")) == 1


def test_nothing_is_ordered_while_no_node_serves_the_ingress(acme: AcmeCluster) -> None:
    host = "idle.example.test"
    leader = acme.cluster.leader()
    said = "no ready node serves the ingress over HTTP"
    before = leader.log().count(said)
    address, port = "127.0.0.1", acme.responder.port
    stopped = {"enabled": False, "http_port": 0, "reason": "nginx is not installed"}
    assert acme.node.register(address=address, ingress=stopped).status == 200
    assert acme.any().post("/v1/jobs", web_job("idle", host)).status == 201
    wait_until(lambda: leader.log().count(said) > before, 15, message="the leader waiting")
    assert cert_of(acme, host)["status"] == "pending"
    assert host not in backup(acme)[1].table("certs")  # no order, no failure recorded
    # A node serving the ingress again: the order goes out.
    serving = {"enabled": True, "http_port": port}
    assert acme.node.register(address=address, ingress=serving).status == 200
    cert = wait_cert(acme, host, is_valid)
    assert cert["last_error"] is None
    assert cert_events(acme, host, "cert.failed") == []


def test_a_new_leader_finishes_the_order_with_the_same_account(acme: AcmeCluster) -> None:
    host = "late.example.test"
    account = backup(acme)[1].table("acme")["account"]
    leader = acme.cluster.leader()
    # Kill the leader while it orders: its challenge is published, and the
    # ingress does not serve it yet, so the leader is still waiting to have it
    # validated (up to `publish_wait`). Without the hold, the whole order can
    # pass between two polls of a busy machine.
    acme.responder.refuse(host)
    assert acme.any().post("/v1/jobs", web_job("late", host)).status == 201
    wait_until(lambda: _challenges(acme), 15, 0.02, "the order's challenge")
    leader.kill()
    acme.responder.allow(host)
    started = time.monotonic()
    new_leader = acme.cluster.leader(timeout=20)
    assert new_leader is not leader
    cert = wait_cert(acme, host, is_valid, timeout=60)
    print(f"\n{host}: leader killed mid-order -> valid in {time.monotonic() - started:.2f}s")
    assert cert["last_error"] is None
    _, state = backup(acme)
    assert state.table("acme")["account"] == account  # reused, never written again
    wait_until(lambda: not _challenges(acme), 15, message="no challenge left behind")
