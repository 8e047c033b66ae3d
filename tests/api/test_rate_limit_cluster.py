"""Rate limits on a real server: the 1,001st request of a minute is refused with
Retry-After while other identities are unaffected; unauthenticated requests are
limited per address; health checks never are."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.api.authutil import anon, as_, assert_error, make_token, put_policy
from tests.support.cluster import Cluster, Server
from tests.support.http import Reply


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    c = Cluster(tmp_path_factory.mktemp("ratelimit"), 1).start()
    try:
        s = c.servers[0]
        assert s.post("/v1/jobs", {"name": "web", "image": "busybox"}).status == 201
        put_policy(s, "jobs-read", {"jobs": "read"})
        yield s
    finally:
        c.stop()


def burst(n: int, fn) -> list[Reply]:  # type: ignore[no-untyped-def]
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: fn(), range(n)))


def test_1001st_request_gets_429_and_another_token_is_unaffected(server: Server) -> None:
    a = make_token(server, ["jobs-read"])["secret_id"]
    b = make_token(server, ["jobs-read"])["secret_id"]
    replies = burst(1000, lambda: as_(server, a, "GET", "/v1/jobs/web"))
    assert [r.status for r in replies].count(200) == 1000
    remaining = sorted(int(r.header("X-RateLimit-Remaining")) for r in replies)
    assert remaining == list(range(1000))
    assert {r.header("X-RateLimit-Limit") for r in replies} == {"1000"}
    r = as_(server, a, "GET", "/v1/jobs/web")
    assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.header("Retry-After")) <= 60
    assert r.header("X-RateLimit-Remaining") == "0" and r.header("X-RateLimit-Limit") == "1000"
    assert int(r.header("X-RateLimit-Reset")) > 0
    # b, and the management token (own, higher limit), are untouched
    rb = as_(server, b, "GET", "/v1/jobs/web")
    assert rb.status == 200 and rb.header("X-RateLimit-Remaining") == "999"
    rm = server.get("/v1/jobs/web")
    assert rm.status == 200 and rm.header("X-RateLimit-Limit") == "10000"
    # a JWT made from the limited token shares its identity's budget
    r = anon(server, "POST", "/v1/auth/login", {"acl_token": a})
    assert r.status == 200
    assert_error(as_(server, r.body["token"], "GET", "/v1/jobs"), 429)


def test_unauthenticated_requests_are_limited_per_address(server: Server) -> None:
    replies = burst(1000, lambda: anon(server, "GET", "/v1/jobs"))
    statuses = [r.status for r in replies]
    assert set(statuses) <= {401, 429} and statuses.count(401) >= 900
    assert_error(anon(server, "GET", "/v1/jobs"), 429, "rate_limited")
    assert_error(anon(server, "POST", "/v1/auth/refresh"), 429)
    # monitoring is never throttled; authenticated identities have their own budgets
    assert anon(server, "GET", "/v1/health/live").status == 200
    assert server.get("/v1/jobs").status == 200
