"""``GET /v1/openapi.json``: the OpenAPI 3.1 document of this API (public:
it describes the routes, nothing of the cluster's state)."""

from __future__ import annotations

from aiohttp import web

from api.openapi.document import document_bytes
from httpkit.responses import json_body_response

routes = web.RouteTableDef()


@routes.get("/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_body_response(document_bytes())
