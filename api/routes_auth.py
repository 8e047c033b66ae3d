"""Login, refresh and logout: JWTs with a replicated session behind each.

A login proposes `auth.session.create` (the refresh token's hash, the JWT's
`jti`) and returns a JWT signed with the cluster's key plus a refresh token
that works once (a second use within the grace window gets the same new pair:
api.security.refresh_grace). Refresh rotates both; logout deletes the
session, which every server sees at the same index, so the JWT dies everywhere.

With `{"cookie": true}` (the web panel) the JWT goes into an HttpOnly session
cookie instead of the body, with a CSRF token beside it (api.security.cookies);
refresh and logout then work from the cookie, and logout clears it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from api.context import replica_of
from api.security import jwt_tokens
from api.security.authn import AuthError, KeyUnavailable
from api.security.cookies import (
    BY_COOKIE,
    check_csrf,
    clear_session,
    csrf_token,
    session_credential,
    set_session,
)
from api.security.login_guard import Throttled
from api.security.refresh_grace import SealError
from api.security.runtime import Security, security_of
from domain.passwords import DUMMY_HASH, verify_password
from domain.tokens import hash_secret, new_id, new_refresh_token, refresh_session_id
from httpkit.errors import ApiError, read_json_object
from httpkit.identity import Identity, bearer, client_address, identity_of
from httpkit.responses import json_response, rfc3339
from raft.replica import CommandRejected, NoLeader, RaftRefused

routes = web.RouteTableDef()

MAX_CREDENTIAL = 4096


def _signing_key(sec: Security) -> bytes:
    try:
        return sec.auth.jwt_key()
    except KeyUnavailable as e:
        raise ApiError(500, "signing_key_unavailable", str(e)) from None


def _string_field(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_CREDENTIAL:
        raise ApiError(400, "invalid_field", f"field '{name}' must be a non-empty string")
    return value


def _too_many(retry: int) -> ApiError:
    return ApiError(
        429,
        "too_many_login_attempts",
        f"too many failed logins; retry in {retry}s",
        {"Retry-After": str(retry)},
    )


def _pair(
    sec: Security,
    subject: str,
    sid: str,
    jti: str,
    issued: int,
    expires: int,
    refresh: str,
    cookie_for: web.Request | None = None,
) -> web.Response:
    """The answer of a login or refresh: the JWT (rebuilt identically from the
    same claims), when it expires, and the refresh token; with `cookie_for`,
    the JWT in the session cookie and only the expiry and CSRF token in the body."""
    key = _signing_key(sec)
    token = jwt_tokens.issue(key, subject, sid, jti, issued, expires - issued)
    if cookie_for is None:
        body = {"token": token, "expires_at": rfc3339(expires), "refresh_token": refresh}
        return json_response(body)
    csrf = csrf_token(key, jti)
    response = json_response({"expires_at": rfc3339(expires), "csrf_token": csrf, "cookie": True})
    set_session(response, cookie_for, token, csrf, max(1, expires - int(sec.clock())))
    return response


def _cookie_flag(body: dict[str, Any]) -> bool:
    value = body.get("cookie", False)
    if not isinstance(value, bool):
        raise ApiError(400, "invalid_field", "field 'cookie' must be true or false")
    return value


async def _issue(request: web.Request, subject: str, cookie: bool = False) -> web.Response:
    """Create a session (ending the subject's oldest beyond the cap) and answer with its pair."""
    sec = security_of(request)
    _signing_key(sec)  # before the write: no session without a key to sign its JWT
    now, sid, jti = int(sec.clock()), new_id(), new_id()
    refresh = new_refresh_token(sid)
    session = {
        "id": sid,
        "subject": subject,
        "jti": jti,
        "refresh_hash": hash_secret(refresh),
        "expires_at": (now + sec.settings.refresh_ttl) * 1000,
    }
    await replica_of(request).write(
        "auth.session.create", session=session, max_sessions=sec.settings.max_sessions
    )
    expires = now + sec.settings.jwt_ttl
    return _pair(sec, subject, sid, jti, now, expires, refresh, request if cookie else None)


async def _catch_up(request: web.Request) -> None:
    # Without a leader, answer from local state; a write below will 503 anyway.
    with contextlib.suppress(NoLeader, RaftRefused):
        await replica_of(request).consistent()


@routes.post("/v1/auth/login")
async def login(request: web.Request) -> web.Response:
    sec = security_of(request)
    body = await read_json_object(request)
    cookie = _cookie_flag(body)
    acl_token = _string_field(body, "acl_token")
    username = _string_field(body, "username")
    password = _string_field(body, "password")
    if acl_token is None and (username is None or password is None):
        raise ApiError(
            400, "missing_field", "send {'username', 'password'} or {'acl_token'} to log in"
        )
    try:  # counted before the check, so a concurrent burst cannot outrun the count
        attempt = sec.login_guard.reserve(username, client_address(request))
    except Throttled as e:
        raise _too_many(e.retry_after) from None
    await _catch_up(request)
    subject = await _verified_subject(request, sec, acl_token, username, password)
    if subject is None:  # the reserved slot stays: it is this failure
        await asyncio.sleep(sec.settings.login_failure_delay)
        raise ApiError(401, "invalid_credentials", "unknown user, wrong password or invalid token")
    attempt.succeeded()
    return await _issue(request, subject, cookie)


async def _verified_subject(
    request: web.Request,
    sec: Security,
    acl_token: str | None,
    username: str | None,
    password: str | None,
) -> str | None:
    """`token:<accessor>` or `user:<name>` if the credentials are good, else None."""
    if acl_token is not None:
        try:
            ident = sec.auth.resolve(acl_token)
        except AuthError:
            return None
        return ident.subject if ident.kind == "token" and ident.via == "acl_token" else None
    assert username is not None and password is not None
    with replica_of(request).read() as view:
        user = view.acl_users.get(username)
    stored = user.get("password_hash") if user else None
    loop = asyncio.get_running_loop()
    good = await loop.run_in_executor(None, verify_password, password, stored or DUMMY_HASH)
    return f"user:{username}" if good and stored else None


def _jwt_identity(request: web.Request, sec: Security) -> tuple[Identity | None, bool]:
    """The session refreshed by its JWT: from the Bearer header, else from the
    session cookie (which must bring its CSRF token); and whether by cookie."""
    credential = bearer(request)
    by_cookie = False
    if credential is None:
        credential = session_credential(request)
        by_cookie = credential is not None
    if credential is None:
        return None, False
    try:
        ident = sec.auth.resolve(credential)
    except AuthError as e:
        raise ApiError(401, e.code, e.message) from None
    if ident.via != "jwt" or ident.session_id is None:
        raise ApiError(400, "not_a_session", "only a JWT from /v1/auth/login can be refreshed")
    if by_cookie:
        check_csrf(request, _signing_key(sec), ident.jti)
    return ident, by_cookie


@routes.post("/v1/auth/refresh")
async def refresh(request: web.Request) -> web.Response:
    sec = security_of(request)
    raw = await request.read()
    body = await read_json_object(request) if raw.strip() else {}
    refresh_token = _string_field(body, "refresh_token")
    if refresh_token is not None:
        sid = refresh_session_id(refresh_token)
        if sid is None:
            raise ApiError(401, "invalid_refresh_token", "malformed refresh token")
        rotate = {"id": sid, "expect_refresh_hash": hash_secret(refresh_token)}
        return await _rotate(request, rotate)
    await _catch_up(request)
    ident, by_cookie = _jwt_identity(request, sec)
    if ident is None:
        raise ApiError(
            401, "missing_token", "send a valid Bearer JWT or {'refresh_token': 'rt_...'}"
        )
    rotate = {"id": ident.session_id, "expect_jti": ident.jti}
    return await _rotate(request, rotate, by_cookie)


async def _rotate(
    request: web.Request, rotate: dict[str, Any], cookie: bool = False
) -> web.Response:
    """Swap the session's pair for a new one; within the grace window of the
    last swap, the pair that swap made (api.security.refresh_grace)."""
    sec = security_of(request)
    _signing_key(sec)
    now, sid, jti = int(sec.clock()), rotate["id"], new_id()
    expires = now + sec.settings.jwt_ttl
    refresh = new_refresh_token(sid)
    window_ms = int(sec.settings.refresh_grace * 1000)
    grace = None
    if window_ms > 0:
        sealed = sec.refresh_seal.seal(sid, jti, refresh)
        grace = {"ms": window_ms, "issued_at": now, "token_expires": expires, "sealed": sealed}
    try:
        result = await replica_of(request).write(
            "auth.session.rotate",
            jti=jti,
            refresh_hash=hash_secret(refresh),
            expires_at=(now + sec.settings.refresh_ttl) * 1000,
            grace=grace,
            **rotate,
        )
    except CommandRejected as e:
        if e.status == 401:
            raise ApiError(401, e.code, e.message) from None
        raise
    if result.get("grace"):  # a second refresh in the window: the first one's pair
        jti, now, expires = result["jti"], result["issued_at"], result["token_expires"]
        try:
            refresh = sec.refresh_seal.open(sid, jti, result["sealed"])
        except SealError as e:
            raise ApiError(500, "decryption_failed", str(e)) from None
    cookie_for = request if cookie else None
    return _pair(sec, result["subject"], sid, jti, now, expires, refresh, cookie_for)


@routes.post("/v1/auth/logout")
async def logout(request: web.Request) -> web.Response:
    ident = identity_of(request)
    if ident.via != "jwt" or ident.session_id is None:
        raise ApiError(
            400,
            "not_a_session",
            "logout ends a login session; revoke an ACL token with DELETE /v1/acl/tokens/:accessor",
        )
    result = await replica_of(request).write("auth.session.delete", id=ident.session_id)
    response = json_response({"revoked": result["revoked"]})
    if request.get(BY_COOKIE):
        clear_session(response, request)
    return response
