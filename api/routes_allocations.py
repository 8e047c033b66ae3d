"""Allocations: list, detail, stop, restart; agents report status and fetch their secrets."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.context import blocking_view, read_headers, read_view, replica_of
from api.routes_nodes import own_node, owns
from api.routes_secrets import _open
from domain.jobspec import parse_secret_ref
from httpkit.errors import ApiError, read_json_object, require_field
from httpkit.identity import identity_of
from httpkit.responses import json_response
from raft.fsm_allocs import CLIENT_STATUSES, restart_refusal
from raft.fsm_secrets import version_entry
from raft.views import Secrets

routes = web.RouteTableDef()
SUMMARY = (
    "id",
    "name",
    "job",
    "group",
    "index",
    "node",
    "node_name",
    "status",
    "desired_status",
    "desired_reason",
    "job_version",
    "healthy",
    "create_time",
    "create_index",
    "modify_index",
)
MAX_UPDATES = 1000


def summary(alloc: dict[str, Any]) -> dict[str, Any]:
    """An allocation in a listing: its ``SUMMARY`` fields and its newest
    event (``last_event``, null before the first), so a follower sees what
    a pending allocation is doing (pulling its image) without a read each."""
    out = {k: alloc.get(k) for k in SUMMARY}
    events = alloc.get("events")
    out["last_event"] = events[-1] if events else None
    return out


def detail(alloc: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in alloc.items() if k != "group_spec"}
    out["restarts"] = sum(t.get("restarts", 0) for t in alloc.get("task_states", {}).values())
    out["tasks"] = [t["name"] for t in (alloc.get("group_spec") or {}).get("tasks", [])]
    return out


@routes.get("/v1/allocations")
async def list_allocations(request: web.Request) -> web.Response:
    job, node, status = (request.query.get(k) for k in ("job", "node", "status"))
    if status is not None and status not in CLIENT_STATUSES:
        raise ApiError(
            400, "invalid_parameter", f"status must be one of {', '.join(CLIENT_STATUSES)}"
        )
    replica = await blocking_view(request, "allocations")
    with replica.read() as view:
        if node is not None:
            node_doc = view.nodes.get(node) or next(
                (n for n in view.nodes.values() if n.get("name") == node), None
            )
            allocs = view.allocs.by_node(node_doc["id"]) if node_doc else []
        elif job is not None:
            allocs = view.allocs.by_job(job)
        else:
            allocs = sorted(view.allocs.values(), key=lambda a: a["id"])
        index = view.allocs.index
    out = [
        summary(a)
        for a in allocs
        if (job is None or a["job"] == job) and (status is None or a["status"] == status)
    ]
    return json_response(out, headers=read_headers(replica, index))


def _alloc_or_404(request: web.Request, alloc_id: str) -> dict[str, Any]:
    with replica_of(request).read() as view:
        alloc = view.allocs.get(alloc_id)
        if alloc is None:  # a unique prefix is enough, as with docker and nomad
            matches = [a for k, a in view.allocs.items() if k.startswith(alloc_id)]
            alloc = matches[0] if len(matches) == 1 and len(alloc_id) >= 4 else None
    if alloc is None:
        raise ApiError(404, "allocation_not_found", f"allocation '{alloc_id}' does not exist")
    return alloc


@routes.get("/v1/allocations/{id}")
async def get_allocation(request: web.Request) -> web.Response:
    replica = await blocking_view(request, "allocations")
    alloc = _alloc_or_404(request, request.match_info["id"])
    return json_response(
        detail(alloc), headers=read_headers(replica, replica.table_index("allocations"))
    )


@routes.post("/v1/allocations/{id}/stop")
async def stop_allocation(request: web.Request) -> web.Response:
    await read_view(request)
    alloc = _alloc_or_404(request, request.match_info["id"])
    result = await replica_of(request).write(
        "alloc.stop", id=alloc["id"], reason="stopped by a user"
    )
    return json_response(detail(result["allocation"]))


@routes.post("/v1/allocations/{id}/restart")
async def restart_allocation(request: web.Request) -> web.Response:
    """Restart a running allocation's tasks in place (``{"task": NAME}``: only
    that one). Replicated as a request its node's agent acts on (the
    allocation's ``restart_requested``, raft/fsm_allocs.py): same allocation,
    same node, each task's restart count + 1, its restart policy untouched."""
    body = await read_json_object(request) if (await request.read()).strip() else {}
    task = body.get("task")
    if task is not None and (not isinstance(task, str) or not task):
        raise ApiError(400, "invalid_field", "task: must be the name of one of its tasks")
    await read_view(request)
    alloc = _alloc_or_404(request, request.match_info["id"])
    refusal = restart_refusal(alloc, task)  # refused here: a bad request costs no raft entry
    if refusal is not None:
        raise ApiError(refusal["status"], refusal["error"], refusal["message"])
    result = await replica_of(request).write("alloc.restart", id=alloc["id"], task=task)
    return json_response(
        detail(result["allocation"]), headers={"X-HeroCtl-Index": str(result["index"])}
    )


# --- agents ---------------------------------------------------------------------------


@routes.post("/v1/allocations/status")
async def report_status(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    node = require_field(body, "node")
    updates = require_field(body, "updates", list)
    if len(updates) > MAX_UPDATES or not all(
        isinstance(u, dict) and isinstance(u.get("id"), str) for u in updates
    ):
        raise ApiError(
            400,
            "invalid_field",
            f"field 'updates' must be at most {MAX_UPDATES} objects with an id",
        )
    with replica_of(request).read() as view:
        own_node(request, view, node)  # a node reports its own allocations only
    result = await replica_of(request).write("alloc.update", node=node, updates=updates)
    return json_response(
        {"applied": result["applied"], "refused": result["refused"], "index": result["index"]}
    )


@routes.get("/v1/allocations/{id}/secrets")
async def allocation_secrets(request: web.Request) -> web.Response:
    """The secret env of one task of an allocation (``?task=NAME``), and its
    registry credentials when it has ``registry_auth``, for the node running
    it: an agent gets what that task references, nothing else."""
    name = request.query.get("task")
    if not name:
        raise ApiError(400, "missing_parameter", "say whose secrets: ?task=NAME")
    replica = await read_view(request)
    alloc = _alloc_or_404(request, request.match_info["id"])
    with replica.read() as view:
        node = view.nodes.get(alloc.get("node") or "")
    if node is None or not owns(identity_of(request), node):
        raise ApiError(
            403,
            "not_this_node",
            "only the node running an allocation (its node credential) may read its secrets",
        )
    task = next(
        (t for t in (alloc.get("group_spec") or {}).get("tasks", []) if t["name"] == name), None
    )
    if task is None:
        raise ApiError(400, "invalid_parameter", f"allocation {alloc['id']} has no task '{name}'")
    refs = sorted((task.get("secrets") or {}).items())
    auth = task.get("registry_auth")
    env: dict[str, str] = {}
    out: dict[str, Any] = {"env": env}
    with replica.read() as view:
        for var, ref in refs:
            env[var] = _secret_value(request, view.secrets, ref, f"{name}.{var}")
        if auth:
            password = _secret_value(
                request, view.secrets, auth["password_secret"], f"{name}.registry_auth"
            )
            out["registry_auth"] = {"username": auth["username"], "password": password}
    return json_response(out)


def _secret_value(request: web.Request, docs: Secrets, ref: str, used_by: str) -> str:
    """The plaintext of secret reference ``ref`` (``name[@version]``), which
    ``used_by`` names; 404 when it does not exist."""
    secret, version = parse_secret_ref(ref)
    doc = docs.get(secret)
    entry = version_entry(doc, version or doc["version"]) if doc else None
    if entry is None:
        raise ApiError(404, "secret_not_found", f"secret '{ref}' for {used_by} does not exist")
    return _open(request, secret, entry)
