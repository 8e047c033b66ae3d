"""The HTTP listener of a worker-only node's agent (``heroctld agent``).

It serves the same internal agent endpoints as every server with an agent
(:mod:`agent.http.endpoints`: logs tail and follow, metrics current and
history), so the servers gather a worker's logs and metrics the way they
gather each other's. Nothing else: every other path is a 404.

Only the cluster's servers get in: a request must carry an ``hn_``
credential made from this node's secret (:mod:`domain.node_credentials`),
which only the node and the holders of the cluster key can make. A missing,
forged, expired or foreign credential gets 401 with the contract's error
body; failed attempts are limited per client address (429 beyond
``FAILED_PER_MINUTE``).
"""

from __future__ import annotations

import logging
import ssl

from aiohttp import web

from agent.http import endpoints
from domain.node_credentials import verify_node_token
from httpkit.errors import ApiError, Handler, error_middleware, request_id_middleware
from httpkit.identity import IDENTITY, Identity, bearer, client_address
from httpkit.local_node import LOCAL_NODE, LocalNode
from httpkit.ratelimit import RateLimiter

__all__ = ["DEFAULT_AGENT_API_PORT", "build_worker_app", "start_worker_api"]

log = logging.getLogger("heroctl.agent")

DEFAULT_AGENT_API_PORT = 7072  # beside the servers' 7070 (API) and 7071 (raft)
FAILED_PER_MINUTE = 60

NODE_SECRET = web.AppKey("node_secret", str)
FAILED = web.AppKey("failed_auth", RateLimiter)


def server_identity(server: str) -> Identity:
    """What a verified ``hn_`` credential stands for: that server."""
    return Identity.server(server, via="node")


@web.middleware
async def node_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None:  # 404/405: nothing behind them
        return await handler(request)
    try:
        credential = bearer(request)
        if credential is None:
            raise ApiError(
                401, "missing_token", "this endpoint needs a server's credential: 'Bearer hn_...'"
            )
        node_id = request.app[LOCAL_NODE].node_id or ""
        server, why = verify_node_token(request.app[NODE_SECRET], node_id, credential)
        if server is None:
            raise ApiError(401, "invalid_token", why)
    except ApiError:
        decision = request.app[FAILED].hit("addr:" + client_address(request), FAILED_PER_MINUTE)
        if not decision.allowed:
            raise ApiError(
                429,
                "rate_limited",
                f"too many failed authentications; retry in {decision.retry_after}s",
                {"Retry-After": str(decision.retry_after)},
            ) from None
        raise
    request[IDENTITY] = server_identity(server)
    return await handler(request)


def build_worker_app(local: LocalNode, secret: str) -> web.Application:
    """The agent API of a worker-only node: its stores, guarded by its secret."""
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware, node_auth_middleware]
    )
    app[LOCAL_NODE] = local
    app[NODE_SECRET] = secret
    app[FAILED] = RateLimiter()
    app.add_routes(endpoints.routes)
    return app


async def start_worker_api(
    local: LocalNode, secret: str, host: str, port: int, tls: ssl.SSLContext | None = None
) -> web.AppRunner:
    """Listen on ``host:port`` (OSError when it cannot), over TLS with ``tls``
    (agent.http.worker_tls); ``cleanup()`` the runner to stop. Streams still
    open get two seconds to end."""
    runner = web.AppRunner(
        build_worker_app(local, secret), access_log=None, handle_signals=False, shutdown_timeout=2.0
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True, ssl_context=tls).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner
