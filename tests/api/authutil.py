"""Helpers for the access-control tests against real servers."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

from tests.support import tls
from tests.support.cluster import Server
from tests.support.http import Reply, request


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def anon(server: Server, method: str, path: str, body: Any = None, **kw: Any) -> Reply:
    """A request without the harness's management token."""
    return request(method, server.url + path, body, **kw)


def as_(server: Server, token: str, method: str, path: str, body: Any = None) -> Reply:
    return request(method, server.url + path, body, headers=bearer(token))


def assert_error(r: Reply, status: int, code: str | None = None) -> None:
    assert r.status == status, (r.status, r.raw[:300])
    body = r.body
    assert set(body) == {"error", "message", "request_id"}, body
    assert body["request_id"].startswith("req_") and body["message"]
    if code is not None:
        assert body["error"] == code, body


def login(server: Server, **creds: str) -> dict[str, Any]:
    r = anon(server, "POST", "/v1/auth/login", creds)
    assert r.status == 200, r.raw
    return r.body


def make_token(server: Server, policies: list[str], **extra: Any) -> dict[str, Any]:
    r = server.post("/v1/acl/tokens", {"name": "t", "policies": policies, **extra})
    assert r.status == 201, r.raw
    return r.body


def put_policy(server: Server, name: str, rules: dict[str, Any]) -> None:
    r = server.post(f"/v1/acl/policies/{name}", {"rules": rules})
    assert r.status in (200, 201), r.raw


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    h, p, s = token.split(".")
    pad = lambda x: x + "=" * (-len(x) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(h))),
        json.loads(base64.urlsafe_b64decode(pad(p))),
        s,
    )


def jwt_join(header: dict[str, Any], claims: dict[str, Any], sig: str) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{sig}"


# --- the web panel's cookie session ------------------------------------------------


@dataclass
class Answer:
    reply: Reply
    cookies: list[str]  # every Set-Cookie header


def call(
    server: Server,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request without the harness's token, keeping every Set-Cookie."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.url + path, data=data, method=method)
    for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
        req.add_header(k, v)
    server.ready()  # trusts the cluster CA
    context = tls.context() if server.url.startswith("https:") else None
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            return Answer(
                Reply(r.status, dict(r.headers), r.read()), r.headers.get_all("Set-Cookie") or []
            )
    except urllib.error.HTTPError as e:
        return Answer(
            Reply(e.code, dict(e.headers), e.read()), e.headers.get_all("Set-Cookie") or []
        )


def parse(set_cookies: list[str]) -> dict[str, str]:
    """name -> the whole Set-Cookie line (for its attributes)."""
    return {next(iter(SimpleCookie(line))): line for line in set_cookies}


def value(line: str) -> str:
    jar = SimpleCookie(line)
    return next(iter(jar.values())).value


def cookie_login(server: Server, password: str) -> tuple[str, str, dict[str, str]]:
    """(session JWT, CSRF token, the Set-Cookie lines) of admin's cookie login."""
    creds = {"username": "admin", "password": password, "cookie": True}
    a = call(server, "POST", "/v1/auth/login", creds)
    assert a.reply.status == 200, a.reply.raw
    lines = parse(a.cookies)
    assert set(lines) == {"heroctl_session", "heroctl_csrf"}, a.cookies
    body = a.reply.body
    assert "token" not in body and "refresh_token" not in body, body
    assert body["csrf_token"] == value(lines["heroctl_csrf"])
    return value(lines["heroctl_session"]), body["csrf_token"], lines
