"""The error envelope, request ids and index headers, against a real server."""

from __future__ import annotations

import pytest

from tests.support.cluster import Cluster, Server
from tests.support.http import Reply, request


@pytest.fixture
def server(module_single: Cluster) -> Server:
    return module_single.servers[0]


def assert_error(r: Reply, status: int, code: str) -> None:
    assert r.status == status, r.raw
    body = r.body
    assert set(body) == {"error", "message", "request_id"}
    assert body["error"] == code and body["message"]
    assert body["request_id"].startswith("req_")
    assert r.header("X-Request-Id") == body["request_id"]


def test_every_response_has_request_id_and_index(server: Server) -> None:
    r = server.get("/v1/health/live")
    assert r.status == 200 and r.body == {"status": "ok"}
    assert r.header(
        "X-Request-Id",
    ).startswith("req_")
    assert int(r.header("X-HeroCtl-Index")) > 0


def test_unknown_route_and_wrong_method(server: Server) -> None:
    assert_error(server.get("/v1/nope"), 404, "not_found")
    assert_error(server.get("/elsewhere"), 404, "not_found")
    r = request("PUT", server.url + "/v1/jobs", {"name": "x"})
    assert_error(r, 405, "method_not_allowed")


@pytest.mark.parametrize("raw", [b"{", b"[1,2]", b"", b"\xff\xfe", b"null", b'"str"'])
def test_malformed_json(server: Server, raw: bytes) -> None:
    assert_error(server.post("/v1/jobs", raw=raw), 400, "invalid_json")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": 5}, "name"),
        ({"name": "Bad_Name"}, "name"),
        ({"name": "a" * 64}, "name"),
        ({"name": "ok", "type": "cron"}, "type"),
        ({"name": "ok", "job_modify_index": "3"}, "job_modify_index"),
        ({"name": "ok", "job_modify_index": -1}, "job_modify_index"),
    ],
)
def test_bad_fields_name_the_field(server: Server, body: dict, field: str) -> None:
    r = server.post("/v1/jobs", body)
    assert r.status == 400 and field in r.body["message"], r.body
    assert r.body["error"] in ("missing_field", "invalid_field")


def test_body_over_one_mib(server: Server) -> None:
    big = b'{"name": "big", "pad": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    assert_error(server.post("/v1/jobs", raw=big), 413, "payload_too_large")
    assert server.get("/v1/jobs/big").status == 404


def test_unknown_job(server: Server) -> None:
    assert_error(server.get("/v1/jobs/ghost"), 404, "job_not_found")
    assert_error(server.delete("/v1/jobs/ghost"), 404, "job_not_found")
    assert_error(server.get("/v1/jobs/ghost/versions"), 404, "job_not_found")


def test_job_lifecycle_and_cas(server: Server) -> None:
    r = server.post("/v1/jobs", {"name": "web", "image": "a"})
    assert r.status == 201 and r.body["version"] == 0
    first = r.body["job_modify_index"]
    assert int(r.header("X-HeroCtl-Index")) == first
    r = server.post("/v1/jobs", {"name": "web", "image": "b", "job_modify_index": first})
    assert r.status == 200 and r.body["version"] == 1 and r.body["job_modify_index"] > first
    assert_error(
        server.post("/v1/jobs", {"name": "web", "job_modify_index": first}), 409, "conflict"
    )
    assert_error(server.post("/v1/jobs", {"name": "web", "job_modify_index": 0}), 409, "conflict")
    listing = server.get("/v1/jobs")
    assert listing.status == 200 and [j["name"] for j in listing.body] == ["web"]
    assert server.get("/v1/jobs/web").body["groups"][0]["tasks"][0]["image"] == "b"
    assert [v["version"] for v in server.get("/v1/jobs/web/versions").body] == [1, 0]
    assert server.delete("/v1/jobs/web").status == 200
    assert server.get("/v1/jobs").body == []


def test_stale_reads_carry_leader_headers(server: Server) -> None:
    r = server.get("/v1/jobs?stale=true")
    assert r.status == 200
    assert r.header("X-HeroCtl-Known-Leader") == "true"
    assert int(r.header("X-HeroCtl-Last-Contact")) >= 0
