"""Deployments: list (``?job=``), read (both long-poll), promote, fail, pause, resume.

A deployment is created by the FSM with each job version that changes
allocations and driven by the leader's deployments controller; here users
see them and steer them. A status change is checked here first (404 for an
unknown deployment, 409 when its status does not allow it), so a refused
request costs no raft entry, and again by the FSM in the log's order.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.context import blocking_view, read_headers, read_view
from httpkit.errors import ApiError
from httpkit.responses import json_response
from raft.fsm_deployments import promote_refusal, status_refusal

routes = web.RouteTableDef()
TABLES = ("deployments",)
ACTIONS = {"fail": "failed", "pause": "paused", "resume": "running"}
DESCRIPTIONS = {
    "fail": "deployment failed by a user",
    "pause": "deployment paused by a user",
    "resume": "deployment resumed by a user",
}


def _not_found(dep_id: str) -> ApiError:
    return ApiError(404, "deployment_not_found", f"deployment '{dep_id}' does not exist")


@routes.get("/v1/deployments")
async def list_deployments(request: web.Request) -> web.Response:
    """Newest first; ``?job=NAME`` keeps that job's."""
    job = request.query.get("job")
    replica = await blocking_view(request, *TABLES)
    with replica.read() as view:
        docs: list[dict[str, Any]] = (
            view.deployments.by_job(job) if job is not None else list(view.deployments.values())
        )
        index = view.index_of(*TABLES)
    docs = sorted(docs, key=lambda d: d["create_index"], reverse=True)
    return json_response(docs, headers=read_headers(replica, index))


@routes.get("/v1/deployments/{id}")
async def get_deployment(request: web.Request) -> web.Response:
    dep_id = request.match_info["id"]
    replica = await blocking_view(request, *TABLES)
    with replica.read() as view:
        doc = view.deployments.get(dep_id)
        index = view.index_of(*TABLES)
    if doc is None:
        raise _not_found(dep_id)
    return json_response(doc, headers=read_headers(replica, index))


async def _steer(request: web.Request, action: str) -> web.Response:
    dep_id = request.match_info["id"]
    replica = await read_view(request)
    with replica.read() as view:
        doc = view.deployments.get(dep_id)
    if doc is None:
        raise _not_found(dep_id)
    status = ACTIONS[action]
    refusal = status_refusal(doc, status)
    if refusal is not None:
        raise ApiError(refusal["status"], refusal["error"], refusal["message"])
    result = await replica.write(
        "deployment.status", id=dep_id, status=status, description=DESCRIPTIONS[action]
    )
    body = dict(result["deployment"], index=result["index"])
    return json_response(body, headers={"X-HeroCtl-Index": str(result["index"])})


@routes.post("/v1/deployments/{id}/fail")
async def fail_deployment(request: web.Request) -> web.Response:
    return await _steer(request, "fail")


@routes.post("/v1/deployments/{id}/pause")
async def pause_deployment(request: web.Request) -> web.Response:
    return await _steer(request, "pause")


@routes.post("/v1/deployments/{id}/resume")
async def resume_deployment(request: web.Request) -> web.Response:
    return await _steer(request, "resume")


@routes.post("/v1/deployments/{id}/promote")
async def promote_deployment(request: web.Request) -> web.Response:
    """A canary or blue-green deployment blocked on promotion rolls the rest
    (canary) or stops the old set (blue-green); any other: 409, nothing changes."""
    dep_id = request.match_info["id"]
    replica = await read_view(request)
    with replica.read() as view:
        doc = view.deployments.get(dep_id)
        refusal = None if doc is None else promote_refusal(doc, view.jobs.get(doc["job"]))
    if doc is None:
        raise _not_found(dep_id)
    if refusal is not None:
        raise ApiError(refusal["status"], refusal["error"], refusal["message"])
    result = await replica.write(
        "deployment.promote", id=dep_id, description="deployment promoted by a user"
    )
    body = dict(result["deployment"], index=result["index"])
    return json_response(body, headers={"X-HeroCtl-Index": str(result["index"])})
