"""The web panel's session against a real server: the login cookie's flags,
CSRF on state-changing cookie requests, logout ending the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.authutil import assert_error, call, cookie_login, parse, value
from tests.support.cluster import Cluster, Server

ADMIN_PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """A TLS server and a plain-HTTP one (as under --dev)."""
    root: Path = tmp_path_factory.mktemp("cookie")
    env = {"HEROCTL_ADMIN_PASSWORD": ADMIN_PASSWORD}
    (root / "tls").mkdir()
    (root / "plain").mkdir()
    secure = Cluster(root / "tls", 1, env=env).start()
    plain = Cluster(root / "plain", 1, env=env, tls=False).start()
    try:
        yield secure.servers[0], plain.servers[0]
    finally:
        secure.stop()
        plain.stop()


def test_cookie_flags(servers: tuple[Server, Server]) -> None:
    secure, plain = servers
    _, _, lines = cookie_login(secure, ADMIN_PASSWORD)
    session = lines["heroctl_session"].lower()
    for flag in ("httponly", "samesite=strict", "secure", "path=/"):
        assert flag in session, session
    csrf = lines["heroctl_csrf"].lower()
    assert "httponly" not in csrf and "samesite=strict" in csrf and "secure" in csrf
    _, _, lines = cookie_login(
        plain, ADMIN_PASSWORD
    )  # plain HTTP: a Secure cookie would never come back
    session = lines["heroctl_session"].lower()
    assert "httponly" in session and "samesite=strict" in session
    assert "secure" not in session


def test_cookie_reads_and_csrf_guards_writes(servers: tuple[Server, Server]) -> None:
    server = servers[0]
    jwt, csrf, _ = cookie_login(server, ADMIN_PASSWORD)
    cookie = {"Cookie": f"heroctl_session={jwt}; heroctl_csrf={csrf}"}
    me = call(server, "GET", "/v1/acl/tokens/self", headers=cookie)
    assert me.reply.status == 200 and me.reply.body["type"] == "management", me.reply.raw
    assert me.reply.body["permissions"]["management"] is True  # what the panel shows buttons by
    secret = {"name": "panel-db", "value": "s3cret"}
    refused = call(server, "POST", "/v1/secrets", secret, headers=cookie)
    assert_error(refused.reply, 403, "csrf_failed")
    wrong = call(server, "POST", "/v1/secrets", secret, headers={**cookie, "X-CSRF-Token": "x"})
    assert_error(wrong.reply, 403, "csrf_failed")
    ok = call(server, "POST", "/v1/secrets", secret, headers={**cookie, "X-CSRF-Token": csrf})
    assert ok.reply.status in (200, 201), ok.reply.raw
    # a bearer request needs no CSRF token, cookie or not
    bearer = call(server, "POST", "/v1/secrets", secret, headers={"Authorization": f"Bearer {jwt}"})
    assert bearer.reply.status in (200, 201), bearer.reply.raw
    # logout is a write too
    assert_error(call(server, "POST", "/v1/auth/logout", headers=cookie).reply, 403, "csrf_failed")


def test_logout_ends_the_session(servers: tuple[Server, Server]) -> None:
    server = servers[0]
    jwt, csrf, _ = cookie_login(server, ADMIN_PASSWORD)
    cookie = {"Cookie": f"heroctl_session={jwt}; heroctl_csrf={csrf}"}
    out = call(server, "POST", "/v1/auth/logout", headers={**cookie, "X-CSRF-Token": csrf})
    assert out.reply.status == 200 and out.reply.body == {"revoked": True}, out.reply.raw
    cleared = parse(out.cookies)
    assert set(cleared) == {"heroctl_session", "heroctl_csrf"}
    assert all("max-age=0" in line.lower() for line in cleared.values()), cleared
    # the old cookie (a copy kept by someone) is dead on the server side
    after = call(server, "GET", "/v1/acl/tokens/self", headers=cookie)
    assert_error(after.reply, 401, "invalid_token")
    after = call(server, "GET", "/v1/jobs", headers={"Authorization": f"Bearer {jwt}"})
    assert_error(after.reply, 401, "invalid_token")


def test_acl_token_cookie_login_and_refresh(servers: tuple[Server, Server]) -> None:
    server = servers[0]
    assert server.token
    a = call(server, "POST", "/v1/auth/login", {"acl_token": server.token, "cookie": True})
    assert a.reply.status == 200, a.reply.raw
    lines = parse(a.cookies)
    jwt, csrf = value(lines["heroctl_session"]), a.reply.body["csrf_token"]
    cookie = {"Cookie": f"heroctl_session={jwt}; heroctl_csrf={csrf}"}
    assert_error(call(server, "POST", "/v1/auth/refresh", headers=cookie).reply, 403, "csrf_failed")
    r = call(server, "POST", "/v1/auth/refresh", headers={**cookie, "X-CSRF-Token": csrf})
    assert r.reply.status == 200, r.reply.raw
    fresh = parse(r.cookies)
    new_jwt, new_csrf = value(fresh["heroctl_session"]), r.reply.body["csrf_token"]
    assert new_jwt != jwt and new_csrf != csrf
    me = call(
        server, "GET", "/v1/acl/tokens/self", headers={"Cookie": f"heroctl_session={new_jwt}"}
    )
    assert me.reply.status == 200, me.reply.raw
    bad = call(server, "POST", "/v1/auth/login", {"acl_token": server.token, "cookie": "yes"})
    assert_error(bad.reply, 400, "invalid_field")
