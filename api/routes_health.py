"""Health endpoints: no token, no raft round trip."""

from __future__ import annotations

from aiohttp import web

from api.context import replica_of
from httpkit.errors import ApiError
from httpkit.responses import json_response

routes = web.RouteTableDef()


@routes.get("/v1/health/live")
async def live(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/v1/health/ready")
async def ready(request: web.Request) -> web.Response:
    replica = replica_of(request)
    if replica.is_ready():
        return json_response({"status": "ok"})
    if not replica.known_leader():
        raise ApiError(503, "not_ready", "this server does not know a leader")
    raise ApiError(503, "not_ready", "this server has not applied everything committed yet")
