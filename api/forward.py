"""Forwarding to the leader's API for operations that only the leader can do.

Writes need no forwarding (raft forwards commands); membership changes and
leadership transfer act on the leader's raft node, so a follower relays the
request over HTTP, once: a relayed request that lands on a non-leader is 503.
The caller's credential goes along (a bearer token, or the web panel's
session cookie with its CSRF token), except a server credential: that one was
made for this server only, so this server vouches for it with one made for
the leader, in the same server's name.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from api.context import TLS_CLIENT, replica_of
from api.security.runtime import security_of
from httpkit.identity import IDENTITY
from raft.replica import NoLeader

HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)
FORWARDED = "X-HeroCtl-Forwarded"
# the caller's credential: a bearer, or the panel's session cookie and its CSRF token
_PASS_HEADERS = ("Content-Type", "Authorization", "Cookie", "X-CSRF-Token")
_KEEP_HEADERS = ("X-Request-Id", "X-HeroCtl-Index", "Retry-After")


async def http_session_ctx(app: web.Application):  # cleanup_ctx
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=15),
        connector=aiohttp.TCPConnector(ssl=app.get(TLS_CLIENT, True)),
    )
    app[HTTP_SESSION] = session
    yield
    await session.close()


async def leader_or_forward(request: web.Request) -> web.Response | None:
    """None when this server leads; otherwise the leader's answer."""
    replica = replica_of(request)
    await replica.wait_for_leader()
    if replica.is_leader:
        return None
    if request.headers.get(FORWARDED):
        raise NoLeader("request was relayed to a server that is no longer the leader")
    leader = replica.leader_server()
    if not leader or not leader.get("api_address"):
        raise NoLeader("the leader's API address is not known yet")
    headers = {h: request.headers[h] for h in _PASS_HEADERS if h in request.headers}
    identity = request.get(IDENTITY)
    if identity is not None and identity.kind == "server" and identity.via == "server":
        token = security_of(request).keys.server_token(identity.name, audience=leader["name"])
        headers["Authorization"] = f"Bearer {token}"
    headers[FORWARDED] = replica.identity.name
    body = await request.read()
    session = request.app[HTTP_SESSION]
    url = leader["api_address"].rstrip("/") + request.path_qs
    try:
        async with session.request(request.method, url, data=body or None, headers=headers) as r:
            payload = await r.read()
            # the leader's request id (its error body names it), index and retry hint
            kept = {h: r.headers[h] for h in _KEEP_HEADERS if h in r.headers}
            out = web.Response(status=r.status, body=payload, headers=kept)
            out.content_type = r.content_type
            return out
    except (aiohttp.ClientError, TimeoutError) as e:
        raise NoLeader(f"could not reach the leader at {url}: {e}") from None
