"""Nodes: what agents register and heartbeat, what operators list, drain and mark."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from api.context import HEARTBEATS, blocking_view, read_headers, read_view, replica_of
from api.forward import leader_or_forward
from api.ingress_view import with_release
from api.security.runtime import security_of
from api.tls_ca import sign_agent_csr
from domain.node_credentials import check_node_secret
from httpkit.errors import ApiError, read_json_object, require_field
from httpkit.identity import Identity, identity_of
from httpkit.responses import json_response
from raft.fsm_nodes import NODE_FIELDS, public_node
from raft.replica import StateView

routes = web.RouteTableDef()
LIVE = ("pending", "running")


def find_node(view: StateView, ref: str) -> dict[str, Any] | None:
    """A node by id, or by name (ids are what agents use, names what people type)."""
    nodes = view.nodes
    if ref in nodes:
        return nodes[ref]
    return next((n for n in nodes.values() if n.get("name") == ref), None)


def _node_or_404(view: StateView, ref: str) -> dict[str, Any]:
    node = find_node(view, ref)
    if node is None:
        raise ApiError(404, "node_not_found", f"node '{ref}' does not exist")
    return node


def owns(identity: Identity, node: dict[str, Any]) -> bool:
    """Whether the caller is this node: its own node credential, or the
    server whose embedded agent it is."""
    if identity.kind == "node":
        return identity.name == node["id"]
    return identity.kind == "server" and node.get("owner") == f"server:{identity.name}"


def own_node(request: web.Request, view: StateView, node_id: Any) -> dict[str, Any]:
    """Node `node_id` when the caller is that node (agents' reports); else 404/403."""
    node = view.nodes.get(node_id) if isinstance(node_id, str) else None
    if node is None:
        raise ApiError(404, "node_not_found", f"node '{node_id}' is not registered")
    if not owns(identity_of(request), node):
        raise ApiError(
            403,
            "not_this_node",
            f"only node '{node_id}' itself (its node credential) may report for it",
        )
    return node


def _allocated(allocs: list[dict[str, Any]]) -> dict[str, int]:
    live = [a for a in allocs if a["desired_status"] == "run" and a["status"] in LIVE]
    return {
        "cpu": sum(a["resources"].get("cpu", 0) for a in live),
        "memory": sum(a["resources"].get("memory", 0) for a in live),
        "allocations": len(live),
    }


def node_summary(node: dict[str, Any], allocs: list[dict[str, Any]]) -> dict[str, Any]:
    res = node.get("resources", {})
    return {
        "id": node["id"],
        "name": node.get("name"),
        "address": node.get("address"),
        "status": "draining"
        if node.get("drain") and node.get("status") == "ready"
        else node.get("status"),
        "eligibility": node.get("eligibility"),
        "drain": node.get("drain"),
        "drivers": node.get("drivers", []),
        "cpu": res.get("cpu", 0),
        "memory": res.get("memory", 0),
        "allocated": _allocated(allocs),
        "modify_index": node.get("modify_index"),
    }


@routes.get("/v1/nodes")
async def list_nodes(request: web.Request) -> web.Response:
    replica = await blocking_view(request, "nodes", "allocations")
    with replica.read() as view:
        out = [
            node_summary(n, view.allocs.by_node(n["id"]))
            for n in sorted(view.nodes.values(), key=lambda n: n.get("name", ""))
        ]
        index = max(view.nodes.index, view.allocs.index)
    return json_response(out, headers=read_headers(replica, index))


@routes.get("/v1/nodes/{id}")
async def get_node(request: web.Request) -> web.Response:
    replica = await blocking_view(request, "nodes", "allocations")
    with replica.read() as view:
        node = _node_or_404(view, request.match_info["id"])
        allocs = view.allocs.by_node(node["id"])
        index = max(view.nodes.index, view.allocs.index)
    res = node.get("resources", {})
    allocated = _allocated(allocs)
    used = request.app[HEARTBEATS].usage.get(node["id"])
    out = node_summary(node, allocs)
    out.update(
        labels=node.get("labels", {}),
        attributes=node.get("attributes", {}),
        resources={
            kind: {
                "total": res.get(kind, 0),
                "allocated": allocated.get(kind),
                "used": (used or {}).get(kind),
            }
            for kind in ("cpu", "memory", "disk")
        },
        allocations=[
            {
                k: a.get(k)
                for k in ("id", "name", "job", "group", "status", "desired_status", "healthy")
            }
            for a in allocs
        ],
        agent_api=node.get("agent_api"),
        ingress=node.get("ingress"),
        registered_at=node.get("registered_at"),
        status_updated_at=node.get("status_updated_at"),
        last_drain=node.get("last_drain"),
    )
    return json_response(out, headers=read_headers(replica, index))


# --- agents ---------------------------------------------------------------------------


@routes.post("/v1/nodes/register")
async def register_node(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    require_field(body, "id")
    require_field(body, "name")
    resources = body.get("resources", {})
    if not isinstance(resources, dict) or not all(
        isinstance(resources.get(k, 0), int) and resources.get(k, 0) >= 0
        for k in ("cpu", "memory", "disk")
    ):
        raise ApiError(
            400, "invalid_field", "field 'resources' must hold non-negative cpu, memory, disk"
        )
    for field, kind in (
        ("drivers", list),
        ("labels", dict),
        ("attributes", dict),
        ("port_range", list),
        ("address", str),
    ):
        if field in body and not isinstance(body[field], kind):
            raise ApiError(400, "invalid_field", f"field '{field}' must be a {kind.__name__}")
    if "ingress" in body:
        _check_ingress(body["ingress"])
    node = {k: body[k] for k in ("id", *NODE_FIELDS) if k in body}
    node.update(_ownership(request, body))
    cert = sign_agent_csr(request, body)
    result = await replica_of(request).write("node.register", node=node)
    request.app[HEARTBEATS].beat(node["id"], None)
    answer = public_node(result["node"])
    if cert is not None:  # the certificate of its agent API (api.tls_ca)
        answer["agent_cert"] = cert
    return json_response(answer)


INGRESS_KEYS = {"enabled", "reason", "http_port", "https_port", "error"}


def _check_ingress(value: Any) -> None:
    """A node's ingress status: `{enabled, reason, http_port, https_port, error}`."""
    ok = (
        isinstance(value, dict)
        and set(value) <= INGRESS_KEYS
        and isinstance(value.get("enabled"), bool)
        and all(
            isinstance(value.get(k, 0), int) and 0 <= value.get(k, 0) <= 65535
            for k in ("http_port", "https_port")
        )
        and all(
            value.get(k) is None or (isinstance(value[k], str) and len(value[k]) <= 4096)
            for k in ("reason", "error")
        )
    )
    if not ok:
        raise ApiError(
            400,
            "invalid_field",
            "field 'ingress' must be {enabled, reason, http_port, https_port, error}",
        )


def _ownership(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    """Who the node is (``owner``, checked against the registered one in the
    FSM), and for a worker-only node the agent API it serves and its node
    secret, sealed here before it is proposed.

    A server registers its embedded agent's node with its own credential. A
    worker-only node registers with its node secret: the first time with an
    ACL token allowed ``nodes: write``, then with the node credential that
    secret makes; either way, a node id registered before takes only the
    same secret."""
    identity = identity_of(request)
    if identity.kind == "server":
        return {"owner": f"server:{identity.name}", "agent_api": None, "agent_secret": None}
    node_id = str(body["id"])
    if identity.kind == "node" and identity.name != node_id:
        raise ApiError(403, "not_this_node", "a node credential registers its own node only")
    secret = body.get("agent_secret")
    if check_node_secret(secret) is None:
        raise ApiError(
            400,
            "invalid_field",
            "field 'agent_secret' (the node secret) must be 32 to 256 printable characters",
        )
    url = body.get("agent_api")
    if url is not None:
        parts = urlsplit(url) if isinstance(url, str) and len(url) <= 512 else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError(400, "invalid_field", "field 'agent_api' must be an http(s) URL")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ApiError(400, "invalid_field", "field 'agent_api' must be a plain http(s) URL")
        url = url.rstrip("/")
    secrets = security_of(request).node_secrets
    return {
        "owner": secrets.owner(node_id, secret),
        "agent_api": url,
        "agent_secret": secrets.seal(node_id, secret),
    }


@routes.post("/v1/nodes/{id}/heartbeat")
async def heartbeat(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    if (forwarded := await leader_or_forward(request)) is not None:
        return forwarded  # heartbeats live in the leader's memory
    replica = replica_of(request)
    node_id = request.match_info["id"]
    with replica.read() as view:
        node = own_node(request, view, node_id)
    beats = request.app[HEARTBEATS]
    usage = body.get("usage")
    beats.beat(node_id, usage if isinstance(usage, dict) else None)
    if node.get("status") != "ready":
        await replica.write("node.status", id=node_id, status="ready")
    return json_response({"ttl_seconds": beats.ttl, "status": "ready"})


@routes.get("/v1/nodes/{id}/allocations")
async def node_allocations(request: web.Request) -> web.Response:
    """What a node's agent runs. An allocation stopped while it took traffic
    says `ingress_released` (api.ingress_view.with_release): while one is
    not, the long poll also wakes when a node's ingress acknowledges a model."""
    with replica_of(request).read() as view:
        if identity_of(request).kind == "node":  # a node watches its own allocations only
            own_node(request, view, request.match_info["id"])
        node = _node_or_404(view, request.match_info["id"])
        _, drains = with_release(view, view.allocs.by_node(node["id"]))
    tables = ("allocations", "ingress_acks") if drains else ("allocations",)
    replica = await blocking_view(request, *tables)
    with replica.read() as view:
        allocs, drains = with_release(view, view.allocs.by_node(node["id"]))
        index = view.index_of(*tables) if drains else view.allocs.index
    return json_response(allocs, headers=read_headers(replica, index))


# --- operators ------------------------------------------------------------------------


def _node_id(request: web.Request) -> str:
    replica = replica_of(request)
    with replica.read() as view:
        return _node_or_404(view, request.match_info["id"])["id"]


@routes.post("/v1/nodes/{id}/drain")
async def drain_node(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    await read_view(request)
    node_id = _node_id(request)
    enable = body.get("enable", True)
    if not isinstance(enable, bool):
        raise ApiError(400, "invalid_field", "field 'enable' must be true or false")
    fields: dict[str, Any] = {"id": node_id, "enable": enable}
    if enable:
        deadline = body.get("deadline_seconds", 3600)
        if not isinstance(deadline, int) or isinstance(deadline, bool) or deadline < 0:
            raise ApiError(
                400, "invalid_field", "field 'deadline_seconds' must be a non-negative integer"
            )
        fields["deadline_seconds"] = deadline
    else:
        keep = body.get("keep_ineligible", False)
        if not isinstance(keep, bool):
            raise ApiError(400, "invalid_field", "field 'keep_ineligible' must be true or false")
        fields["keep_ineligible"] = keep
    result = await replica_of(request).write("node.drain", **fields)
    return json_response(public_node(result["node"]))


@routes.post("/v1/nodes/{id}/eligibility")
async def node_eligibility(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    await read_view(request)
    node_id = _node_id(request)
    eligible = body.get("eligible")
    if eligible is None and isinstance(body.get("eligibility"), str):
        eligible = {"eligible": True, "ineligible": False}.get(body["eligibility"])
    if not isinstance(eligible, bool):
        raise ApiError(
            400,
            "invalid_field",
            "field 'eligible' must be true or false (or 'eligibility': eligible|ineligible)",
        )
    result = await replica_of(request).write("node.eligibility", id=node_id, eligible=eligible)
    return json_response(public_node(result["node"]))
