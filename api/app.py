"""The aiohttp application: middlewares in DESIGN's order, one route module per resource."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable, Iterable

from aiohttp import web

from api import (
    routes_acl,
    routes_allocations,
    routes_auth,
    routes_cluster,
    routes_deployments,
    routes_events,
    routes_health,
    routes_ingress,
    routes_jobs,
    routes_logs,
    routes_metrics,
    routes_nodes,
    routes_openapi,
    routes_operator,
    routes_secrets,
    routes_webhooks,
    ui,
)
from api.context import CLUSTER_CA, HEARTBEATS, REPLICA, TLS_CLIENT
from api.forward import http_session_ctx
from api.security.middleware import add_rate_headers, admit, throttle
from api.security.runtime import SECURITY, Security, SecuritySettings
from domain.heartbeats import Heartbeats
from httpkit.errors import Handler, error_for, new_request_id
from httpkit.request_rate import count_request
from httpkit.responses import RenderedViews, compress_large
from raft.keys import generate_cluster_key
from raft.replica import Replica

MAX_BODY = 1024 * 1024


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """DESIGN's chain, request id -> error envelope -> auth -> rate limit, in
    one frame (five nested middlewares cost ≈6 % of a cheap read)."""
    count_request(request)
    rid = new_request_id()
    request["request_id"] = rid
    try:
        await admit(request)
        throttle(request)
        response = await handler(request)
    except Exception as exc:
        response = error_for(exc, request, rid)
    compress_large(request, response)
    if "X-HeroCtl-Index" not in response.headers:
        response.headers["X-HeroCtl-Index"] = str(request.app[REPLICA].index)
    # a forwarded answer keeps the leader's id: the one its error body and log name
    response.headers.setdefault("X-Request-Id", rid)
    return response


def build_app(
    replica: Replica,
    security: SecuritySettings | None = None,
    heartbeats: Heartbeats | None = None,
    extra_routes: Iterable[web.RouteTableDef] = (),
    tls_client: ssl.SSLContext | None = None,
    cluster_ca: Callable[[], str | None] | None = None,
    api_domain: str | None = None,
) -> web.Application:
    """`security` carries the cluster key and limits; without it (tests of other
    parts) a throwaway key is used, so nothing from a real cluster decrypts.
    `extra_routes`: what the daemon adds behind the same middleware (the
    embedded agent's endpoints). `tls_client`: how this server verifies the
    servers it calls (default: the system's trust store); `cluster_ca`: the CA
    PEM it serves at GET /v1/cluster/ca (default: the CA in the state)."""
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[api_middleware],
    )
    app[REPLICA] = replica
    app[HEARTBEATS] = heartbeats or Heartbeats()
    if tls_client is not None:
        app[TLS_CLIENT] = tls_client
    if cluster_ca is not None:
        app[CLUSTER_CA] = cluster_ca
    if api_domain:
        app[routes_ingress.API_DOMAIN] = api_domain
    app[routes_jobs.JOB_VIEWS] = RenderedViews()
    settings = security or SecuritySettings(generate_cluster_key())
    if not settings.server_name:  # server credentials must be made for this server
        settings = dataclasses.replace(settings, server_name=replica.identity.name)
    app[SECURITY] = Security(settings, replica.read())
    app.on_response_prepare.append(add_rate_headers)
    app.cleanup_ctx.append(http_session_ctx)
    routes_logs.setup(app)
    routes_metrics.setup(app)
    # routes_auth and routes_acl before others: /v1/acl/tokens/self precedes /{accessor}.
    for module in (
        routes_health,
        routes_openapi,
        routes_auth,
        routes_acl,
        routes_secrets,
        routes_cluster,
        routes_jobs,
        routes_deployments,
        routes_nodes,
        routes_ingress,
        routes_allocations,
        routes_operator,
        routes_events,
        routes_webhooks,
        routes_logs,
        routes_metrics,
        ui,  # the web panel's files at /ui/
    ):
        app.add_routes(module.routes)
    for table in extra_routes:
        app.add_routes(table)
    return app
