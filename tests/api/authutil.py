"""Helpers for the access-control tests against real servers."""

from __future__ import annotations

import base64
import json
from typing import Any

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
