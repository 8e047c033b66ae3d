"""Browser sessions: the login JWT in an HttpOnly cookie, and CSRF protection.

`POST /v1/auth/login` with `{"cookie": true}` sets two cookies instead of
returning the JWT and refresh token in the body:

- `heroctl_session`: the JWT, `HttpOnly` (no script reads it), `SameSite=Strict`,
  `Path=/`, and `Secure` whenever the request came over HTTPS (every server
  outside `--dev` / `[tls] mode = off`);
- `heroctl_csrf`: a token derived from the session (HMAC of the JWT's `jti`
  with the cluster's signing key), readable by the panel's scripts.

A request authenticated by the session cookie (no `Authorization` header)
that changes state (anything but GET, HEAD, OPTIONS) must carry that token in
`X-CSRF-Token`, or it is refused with 403 `csrf_failed`. Because the token is
bound to the session, a cookie planted by a sibling domain cannot forge it;
because another origin cannot read the cookie, it cannot send it. Bearer
requests are unaffected (a browser never adds an Authorization header by
itself). SSE streams (`/v1/events`, `/v1/logs`) are GETs: `EventSource`
sends the cookie, so no token goes in a URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from aiohttp import web

from httpkit.errors import ApiError

SESSION_COOKIE = "heroctl_session"
CSRF_COOKIE = "heroctl_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BY_COOKIE = "heroctl.auth_by_cookie"  # request key: True when the cookie authenticated it


def csrf_token(signing_key: bytes, jti: str) -> str:
    """The CSRF token of the session whose current JWT has this `jti`."""
    mac = hmac.new(signing_key, b"heroctl-csrf:" + jti.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


def session_credential(request: web.Request) -> str | None:
    """The JWT from the session cookie, or None."""
    value = request.cookies.get(SESSION_COOKIE)
    return value or None


def check_csrf(request: web.Request, signing_key: bytes, jti: str | None) -> None:
    """403 unless a state-changing cookie request carries its session's token."""
    if request.method.upper() in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or jti is None or not hmac.compare_digest(sent, csrf_token(signing_key, jti)):
        raise ApiError(
            403,
            "csrf_failed",
            f"a request signed in by the session cookie must send its CSRF token in {CSRF_HEADER}",
        )


def _secure(request: web.Request) -> bool:
    return request.secure


def set_session(
    response: web.StreamResponse, request: web.Request, jwt: str, csrf: str, max_age: int
) -> None:
    """Put a session's JWT and CSRF token in the response's cookies."""
    secure = _secure(request)
    response.set_cookie(
        SESSION_COOKIE,
        jwt,
        max_age=max_age,
        path="/",
        httponly=True,
        secure=secure,
        samesite="Strict",
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age, path="/", secure=secure, samesite="Strict"
    )


def clear_session(response: web.StreamResponse, request: web.Request) -> None:
    """Expire both cookies (logout)."""
    secure = _secure(request)
    for name, httponly in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.set_cookie(
            name,
            "",
            max_age=0,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
            path="/",
            httponly=httponly,
            secure=secure,
            samesite="Strict",
        )
