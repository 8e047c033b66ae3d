"""Property-based fuzzing of the auth, ACL and secrets endpoints: no input gives a 5xx,
and every error keeps the envelope."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.cluster import Cluster, Server
from tests.support.http import Reply, request

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    c = Cluster(tmp_path_factory.mktemp("fuzz"), 1).start()
    try:
        s = c.servers[0]
        s.post("/v1/secrets", {"name": "fuzz_target", "value": "v"})
        s.post("/v1/acl/policies/fuzz", {"rules": {"jobs": "read"}})
        yield s
    finally:
        c.stop()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)

FIELDS = [
    "name",
    "value",
    "username",
    "password",
    "acl_token",
    "refresh_token",
    "rules",
    "policies",
    "roles",
    "type",
    "description",
    "version",
    "expiration_ttl",
    "secrets",
    "jobs",
]


def bodies() -> st.SearchStrategy[bytes]:
    objects = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5)
    return st.one_of(
        objects.map(lambda o: json.dumps(o).encode()),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=200),
    )


header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=300)
auth_headers = st.one_of(
    st.none(),
    header_text.map(lambda t: "Bearer " + t),
    header_text,
    st.sampled_from(
        [
            "Bearer ht_",
            "Bearer rt_x.y",
            "Bearer hs_a.1.b",
            "Bearer a.b.c",
            "Bearer eyJhbGciOiJub25lIn0.e30.",
        ]
    ),
)


def send(
    server: Server, method: str, path: str, raw: bytes | None, auth: str | None, use_admin: bool
) -> Reply:
    headers = {"Content-Type": "application/json"}
    if use_admin and server.token:
        headers["Authorization"] = f"Bearer {server.token}"
    elif auth is not None:
        headers["Authorization"] = auth
    return request(method, server.url + path, raw=raw, headers=headers, timeout=30)


def check(r: Reply) -> None:
    assert r.status < 500, (r.status, r.raw[:300])
    if r.status >= 400:
        body = r.body
        assert set(body) == {"error", "message", "request_id"}, body


ENDPOINTS = [
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/refresh"),
    ("POST", "/v1/auth/logout"),
    ("POST", "/v1/acl/bootstrap"),
    ("POST", "/v1/acl/policies"),
    ("POST", "/v1/acl/roles"),
    ("POST", "/v1/acl/tokens"),
    ("POST", "/v1/acl/users"),
    ("POST", "/v1/secrets"),
    ("POST", "/v1/secrets/fuzz_target/rollback"),
    ("GET", "/v1/secrets"),
    ("GET", "/v1/acl/tokens/self"),
]


@FUZZ
@given(
    endpoint=st.sampled_from(ENDPOINTS), raw=bodies(), auth=auth_headers, use_admin=st.booleans()
)
def test_bodies_and_credentials(
    server: Server, endpoint: tuple[str, str], raw: bytes, auth: str | None, use_admin: bool
) -> None:
    method, path = endpoint
    check(send(server, method, path, raw if method == "POST" else None, auth, use_admin))


names = st.one_of(st.text(max_size=140), st.from_regex(r"[A-Za-z0-9_.-]{1,130}", fullmatch=True))


@FUZZ
@given(
    name=names,
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    suffix=st.sampled_from(["", "/versions", "/rollback", "?version=", "?version=1"]),
    extra=st.text(max_size=12),
    raw=bodies(),
    table=st.sampled_from(["secrets", "acl/policies", "acl/roles", "acl/tokens", "acl/users"]),
)
def test_named_resources(
    server: Server, name: str, method: str, suffix: str, extra: str, raw: bytes, table: str
) -> None:
    quoted = quote(name, safe="")
    if not quoted:
        quoted = "x"
    tail = suffix + quote(extra, safe="") if suffix.endswith("=") else suffix
    r = send(
        server,
        method,
        f"/v1/{table}/{quoted}{tail}",
        raw if method in ("POST", "PUT") else None,
        None,
        True,
    )
    check(r)


@FUZZ
@given(value=st.text(max_size=300), name=st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True))
def test_any_value_round_trips(server: Server, value: str, name: str) -> None:
    r = server.post("/v1/secrets", {"name": "rt_" + name, "value": value})
    check(r)
    if r.status in (200, 201):
        got = server.get(f"/v1/secrets/rt_{name}")
        assert got.status == 200 and got.body["value"] == value


def test_still_healthy_after_fuzzing(server: Server) -> None:
    assert server.get("/v1/secrets/fuzz_target").body["value"] == "v"
    assert "Traceback" not in server.log()
    body: Any = server.get("/v1/cluster/status").body
    assert body["healthy"]
