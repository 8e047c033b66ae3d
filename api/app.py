"""The aiohttp application: middlewares in DESIGN's order, one route module per resource."""

from __future__ import annotations

from aiohttp import web

from api import routes_cluster, routes_health, routes_jobs
from api.context import REPLICA
from api.errors import error_middleware, request_id_middleware
from api.forward import http_session_ctx
from raft.replica import Replica

MAX_BODY = 1024 * 1024


@web.middleware
async def index_header_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    response = await handler(request)
    if "X-HeroCtl-Index" not in response.headers:
        response.headers["X-HeroCtl-Index"] = str(request.app[REPLICA].index)
    return response


def build_app(replica: Replica) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[request_id_middleware, index_header_middleware, error_middleware],
    )
    app[REPLICA] = replica
    app.cleanup_ctx.append(http_session_ctx)
    for module in (routes_health, routes_cluster, routes_jobs):
        app.add_routes(module.routes)
    return app
