"""Auth and rate limits: the one place requests are admitted.

`admit` then `throttle` run inside the API middleware (api/app.py: request
id -> error envelope -> auth -> rate limit), so a refusal here is an
`ApiError` that the envelope renders.

Auth: the matched route's template (never the raw path) is looked up in
`policy.requirement`; public routes pass, everything else needs a valid
identity (401) with the permission (403). The identity comes from the
`Authorization: Bearer` header or, without one, from the web panel's session
cookie, whose state-changing requests must carry their CSRF token
(api.security.cookies). The panel's static files (GET /ui/...) are public. Requests that match no route fall
through to their 404/405 without a token: there is nothing behind them.
"""

from __future__ import annotations

import contextlib
import logging

from aiohttp import web

from api.context import replica_of
from api.security.authn import AuthError
from api.security.cookies import BY_COOKIE, check_csrf, session_credential
from api.security.readmit import permitted, route_path
from api.security.runtime import RATE_HEADERS, Security, security_of
from domain.policy import MANAGEMENT, PUBLIC, requirement
from httpkit.errors import ApiError
from httpkit.identity import IDENTITY, Identity, bearer, client_address
from raft.replica import NoLeader, RaftRefused

log = logging.getLogger("heroctld.auth")

_HEALTH_PREFIX = "/v1/health/"


def _is_panel(path: str) -> bool:
    """The web panel's static files (api.ui), and `/` that redirects to them:
    no credential needed."""
    return path in ("/", "/ui") or path.startswith("/ui/")


async def authenticate_after_catching_up(
    request: web.Request, sec: Security, credential: str
) -> Identity:
    """A credential unknown here, maybe only because this server is behind:
    catch up once, then resolve it again (AuthError if still unknown)."""
    with contextlib.suppress(NoLeader, RaftRefused):
        await replica_of(request).consistent()
    return sec.auth.resolve(credential)


def _limit_address(request: web.Request, sec: Security) -> None:
    decision = sec.limiter.hit("addr:" + client_address(request), sec.settings.rate_default)
    if not decision.allowed:
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests from this address; retry in {decision.retry_after}s",
            {**decision.headers(), "Retry-After": str(decision.retry_after)},
        )


async def admit(request: web.Request) -> None:
    """Who is asking (401) and may they (403); the identity lands in the request."""
    if request.match_info.http_exception is not None:  # 404/405
        return
    route = (request.method.upper(), route_path(request))
    if route[0] in ("GET", "HEAD") and _is_panel(route[1]):
        return  # the panel's files: everything it shows comes from /v1
    req = requirement(*route)
    if req.kind == PUBLIC:
        return
    sec = security_of(request)
    by_cookie = False
    try:
        credential = bearer(request)
        if credential is None:
            credential = session_credential(request)  # the panel's HttpOnly cookie
            by_cookie = credential is not None
        if credential is None:
            raise AuthError(
                "missing_token", "this endpoint needs a token: 'Authorization: Bearer <token>'"
            )
        try:
            identity = sec.auth.resolve(credential)
        except AuthError as e:
            if not e.retry_with_barrier:
                raise
            identity = await authenticate_after_catching_up(request, sec, credential)
    except (AuthError, ApiError) as e:
        _limit_address(request, sec)  # failed attempts count against the address
        if isinstance(e, ApiError):
            raise
        raise ApiError(401, e.code, e.message) from None
    if by_cookie:
        if identity.via != "jwt" or identity.jti is None:
            raise ApiError(401, "invalid_token", "the session cookie holds no login session")
        check_csrf(request, sec.auth.jwt_key(), identity.jti)
        request[BY_COOKIE] = True
    request[IDENTITY] = identity
    if not permitted(identity, req, route):
        if identity.scope is not None:
            raise ApiError(
                403, "forbidden", f"a {identity.kind} credential may not call {' '.join(route)}"
            )
        what = "management" if req.kind == MANAGEMENT else f"{req.resource}: {req.access}"
        raise ApiError(403, "forbidden", f"this identity lacks the permission '{what}'")


def throttle(request: web.Request) -> None:
    """Count the request against its identity's (or address's) limit (429)."""
    identity: Identity | None = request.get(IDENTITY)
    sec = security_of(request)
    if identity is None:
        if request.path.startswith(_HEALTH_PREFIX):  # monitoring is never throttled
            return
        key, limit = "addr:" + client_address(request), sec.settings.rate_default
    else:
        key, limit = identity.rate_key, sec.limit_for(identity.rate_class)
    decision = sec.limiter.hit(key, limit)
    headers = decision.headers()
    if headers:
        request[RATE_HEADERS] = headers
    if not decision.allowed:
        raise ApiError(
            429,
            "rate_limited",
            f"rate limit of {decision.limit} requests per minute reached; "
            f"retry in {decision.retry_after}s",
            {**headers, "Retry-After": str(decision.retry_after)},
        )


async def add_rate_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: X-RateLimit-* on every response of a limited request."""
    headers = request.get(RATE_HEADERS)
    if headers:
        for k, v in headers.items():
            response.headers.setdefault(k, v)
