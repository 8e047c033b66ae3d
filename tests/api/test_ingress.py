"""The ingress's API against a real server: domains declared by job specs and
through `/v1/ingress`, one owner per host and path, bad input refused with
the field's path and nothing stored, long polls, the policy resource, and
the render model only a node itself may read (it carries certificate keys)."""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.authutil import as_, assert_error, make_token, put_policy
from tests.domain.test_certificates import make_cert
from tests.support.cluster import Cluster, Server
from tests.support.http import Reply
from tests.support.nodes import hand_node

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


def cert_for(host: str, first_day: int = -1, last_day: int = 90) -> tuple[str, str]:
    """(cert PEM, key PEM) valid from `first_day` to `last_day` days from now."""
    return make_cert([host], not_before=NOW + first_day * DAY, not_after=NOW + last_day * DAY)


def web_job(name: str, host: str, path: str = "/", **entry: Any) -> dict[str, Any]:
    return {
        "name": name,
        "groups": [
            {
                "name": "web",
                "count": 0,  # nothing to place: the tests are about the declarations
                "ingress": [{"host": host, "path": path, "port": "http", **entry}],
                "tasks": [
                    {"name": "httpd", "image": "busybox", "ports": [{"name": "http", "to": 80}]}
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("ingress-api"), 1).start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def server(cluster: Cluster) -> Server:
    return cluster.servers[0]


def submit(server: Server, job: dict[str, Any]) -> Reply:
    return server.post("/v1/jobs", job)


def test_a_job_declares_its_domains(server: Server) -> None:
    assert submit(server, web_job("shop", "Shop.Example.com", "/")).status == 201
    listed = {d["host"]: d for d in server.get("/v1/ingress").body}
    shop = listed["shop.example.com"]  # host names are normalized
    assert shop["source"] == "job" and shop["job"] == "shop"
    assert shop["routes"] == [{"path": "/", "job": "shop", "group": "web", "port": "http"}]
    assert shop["tls"]["mode"] == "acme" and shop["tls"]["status"] == "pending"
    detail = server.get("/v1/ingress/shop.example.com").body
    assert detail["cert"]["status"] == "pending" and detail["jobs"] == ["shop"]
    assert detail["routes"][0]["allocations"] == []
    plain = web_job("blog", "blog.example.com", tls="off")
    assert submit(server, plain).status == 201
    assert server.get("/v1/ingress/blog.example.com").body["cert"] == {"status": "off"}


def test_two_owners_of_one_host_and_path_conflict(server: Server) -> None:
    assert submit(server, web_job("shop2", "two.example.com", "/")).status == 201
    r = submit(server, web_job("thief", "two.example.com", "/"))
    assert_error(r, 409, "conflict")
    assert "job 'shop2'" in r.body["message"]
    assert_error(server.get("/v1/jobs/thief"), 404)
    # Another path of the same host is fine; the owner may resubmit itself.
    assert submit(server, web_job("api2", "two.example.com", "/api")).status == 201
    assert submit(server, web_job("shop2", "two.example.com", "/")).status == 200
    # An API entry may not take a job's host ...
    route = {"path": "/", "job": "shop2", "group": "web", "port": "http"}
    r = server.post("/v1/ingress", {"host": "two.example.com", "routes": [route]})
    assert_error(r, 409, "conflict")
    # ... nor a job an API entry's host and path.
    assert server.post("/v1/ingress", {"host": "api.example.com", "routes": [route]}).status == 201
    r = submit(server, web_job("late", "api.example.com", "/"))
    assert_error(r, 409, "conflict")
    assert "ingress entry of 'api.example.com'" in r.body["message"]


def test_two_racing_submits_of_one_host_leave_one_owner(server: Server) -> None:
    results: list[int] = []

    def race(name: str) -> None:
        results.append(submit(server, web_job(name, "race.example.com")).status)

    threads = [threading.Thread(target=race, args=(f"racer{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [201] + [409] * 5
    owners = [d for d in server.get("/v1/ingress").body if d["host"] == "race.example.com"]
    assert len(owners) == 1 and len(owners[0]["routes"]) == 1


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"host": "not a host"}, "groups[0].ingress[0].host"),
        ({"host": "a.example.com", "path": "nope"}, "groups[0].ingress[0].path"),
        ({"host": "a.example.com", "path": "/a;b"}, "groups[0].ingress[0].path"),
        ({"host": "a.example.com", "port": "ghost"}, "groups[0].ingress[0].port"),
        ({"host": "a.example.com", "tls": "sometimes"}, "groups[0].ingress[0].tls"),
        ({"host": "*.example.com"}, "groups[0].ingress[0].host"),
    ],
)
def test_bad_job_ingress_is_a_400_with_its_path(
    server: Server, entry: dict[str, Any], field: str
) -> None:
    job = web_job("bad", "a.example.com")
    job["groups"][0]["ingress"][0].update(entry)
    r = submit(server, job)
    assert_error(r, 400, "invalid_field")
    assert r.body["message"].startswith(field), r.body
    assert_error(server.get("/v1/jobs/bad"), 404)


def route(**overrides: str) -> dict[str, str]:
    return {"path": "/", "job": "shop", "group": "web", "port": "http", **overrides}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"host": "x y", "routes": [route()]}, "host"),
        ({"host": "m.example.com", "routes": []}, "routes"),
        ({"host": "m.example.com", "routes": [route(path="x")]}, "routes[0].path"),
        ({"host": "m.example.com", "routes": [route(job="ghost")]}, "routes[0].job"),
        ({"host": "m.example.com", "routes": [route(group="ghost")]}, "routes[0].group"),
        ({"host": "m.example.com", "routes": [route(port="ghost")]}, "routes[0].port"),
        ({"host": "m.example.com", "routes": [route(), route()]}, "routes[1].path"),
        ({"host": "m.example.com", "routes": [route()], "tls": "maybe"}, "tls"),
        (
            {"host": "m.example.com", "routes": [route()], "tls": {"cert": "junk", "key": "junk"}},
            "tls.cert",
        ),
    ],
)
def test_bad_api_ingress_is_a_400_with_its_path(
    server: Server, body: dict[str, Any], field: str
) -> None:
    r = server.post("/v1/ingress", body)
    assert_error(r, 400, "invalid_field")
    assert r.body["message"].startswith(field), r.body
    assert_error(server.get("/v1/ingress/m.example.com"), 404, "ingress_not_found")


def test_a_manual_certificate_is_checked_and_its_key_never_returned(server: Server) -> None:
    host = "manual.example.com"
    cert, key = cert_for(host)
    _, other_key = cert_for(host)
    expired, expired_key = cert_for(host, -9, -1)
    wrong, wrong_key = cert_for("other.example.com")
    for tls, field, words in (
        ({"cert": cert, "key": other_key}, "tls.key", "does not match"),
        ({"cert": expired, "key": expired_key}, "tls.cert", "expired"),
        ({"cert": wrong, "key": wrong_key}, "tls.cert", "other.example.com"),
    ):
        r = server.post("/v1/ingress", {"host": host, "routes": [route()], "tls": tls})
        assert_error(r, 400, "invalid_field")
        assert r.body["message"].startswith(field) and words in r.body["message"], r.body
        assert "PRIVATE KEY" not in r.raw.decode()
    r = server.post(
        "/v1/ingress", {"host": host, "routes": [route()], "tls": {"cert": cert, "key": key}}
    )
    assert r.status == 201, r.body
    assert "PRIVATE KEY" not in r.raw.decode()
    detail = server.get(f"/v1/ingress/{host}")
    assert detail.body["cert"]["status"] == "valid" and detail.body["cert"]["source"] == "manual"
    assert detail.body["cert"]["issuer"] and "PRIVATE KEY" not in detail.raw.decode()
    assert server.post(f"/v1/ingress/{host}/renew").status == 409  # not an ACME certificate


def test_delete_and_renew(server: Server) -> None:
    assert (
        server.post("/v1/ingress", {"host": "gone.example.com", "routes": [route()]}).status == 201
    )
    r = server.post("/v1/ingress/gone.example.com/renew")
    assert r.status == 202 and r.body["renew_requested"] is True
    assert server.delete("/v1/ingress/gone.example.com").status == 200
    assert_error(server.get("/v1/ingress/gone.example.com"), 404, "ingress_not_found")
    assert_error(server.delete("/v1/ingress/gone.example.com"), 404, "ingress_not_found")
    # A job's domain is changed through its spec.
    r = server.delete("/v1/ingress/shop.example.com")
    assert_error(r, 409, "conflict")
    assert server.get("/v1/ingress/shop.example.com").status == 200


def test_long_polls_wake_on_a_new_domain(server: Server) -> None:
    index = int(server.get("/v1/ingress").header("X-HeroCtl-Index") or 0)
    woke: list[Reply] = []
    waiter = threading.Thread(
        target=lambda: woke.append(server.get(f"/v1/ingress?index={index}&wait=20s", timeout=30))
    )
    began = time.monotonic()
    waiter.start()
    assert submit(server, web_job("poll", "poll.example.com")).status == 201
    waiter.join(30)
    assert woke and woke[0].status == 200 and time.monotonic() - began < 15
    assert any(d["host"] == "poll.example.com" for d in woke[0].body)


def test_policy_resource_ingress(server: Server) -> None:
    put_policy(server, "ingress-read", {"ingress": "read"})
    reader = make_token(server, ["ingress-read"])["secret_id"]
    assert as_(server, reader, "GET", "/v1/ingress").status == 200
    r = as_(server, reader, "POST", "/v1/ingress", {"host": "r.example.com", "routes": [route()]})
    assert_error(r, 403, "forbidden")
    assert_error(as_(server, reader, "DELETE", "/v1/ingress/api.example.com"), 403, "forbidden")


def test_only_a_node_reads_its_render_model(server: Server) -> None:
    host = "model.example.com"
    cert, key = cert_for(host)
    body = {"host": host, "routes": [route()], "tls": {"cert": cert, "key": key}}
    assert server.post("/v1/ingress", body).status == 201
    node = hand_node(server)
    r = node.get(f"/v1/nodes/{node.id}/ingress")
    assert r.status == 200, r.body
    sites = {s["host"]: s for s in r.body["sites"]}
    assert sites[host]["tls"] is True and sites[host]["key_pem"] == key  # opened for the node
    assert sites[host]["routes"] == [{"path": "/", "upstreams": []}]  # shop has no allocation
    assert sites["blog.example.com"]["tls"] is False
    assert sites["shop.example.com"]["cert_pem"] is None  # no ACME certificate yet
    assert r.body["challenges"] == {}
    # Nobody else: another node, a management token.
    assert_error(hand_node(server).get(f"/v1/nodes/{node.id}/ingress"), 403, "not_this_node")
    assert_error(server.get(f"/v1/nodes/{node.id}/ingress"), 403, "not_this_node")


def test_a_node_s_long_poll_returns_when_its_model_changes(server: Server) -> None:
    node = hand_node(server)
    path = f"/v1/nodes/{node.id}/ingress"
    first = node.get(path)
    digest, index = first.header("X-HeroCtl-Ingress-Digest"), first.header("X-HeroCtl-Index")
    answers: list[tuple[float, Reply]] = []

    def poll(wait: str) -> None:
        began = time.monotonic()
        reply = node.get(f"{path}?index={index}&wait={wait}&digest={digest}")
        answers.append((time.monotonic() - began, reply))

    # A change the model does not show (a job without ingress) does not end the poll.
    waiter = threading.Thread(target=poll, args=("2s",))
    waiter.start()
    assert server.post("/v1/jobs", {"name": "no-ingress", "image": "busybox"}).status == 201
    waiter.join(15)
    took, reply = answers.pop()
    assert took >= 1.5 and reply.header("X-HeroCtl-Ingress-Digest") == digest
    # A new domain does, at once.
    waiter = threading.Thread(target=poll, args=("20s",))
    waiter.start()
    assert submit(server, web_job("poll-model", "model-poll.example.com", tls="off")).status == 201
    waiter.join(25)
    took, reply = answers.pop()
    assert took < 10 and reply.header("X-HeroCtl-Ingress-Digest") != digest
    assert "model-poll.example.com" in {s["host"] for s in reply.body["sites"]}
