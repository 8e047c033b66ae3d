"""Ingress: the domains the cluster serves over HTTP(S), their routes and
certificates; and what a node's ingress proxy is configured from."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
from aiohttp import web

from api.context import blocking_view, parse_wait, read_headers, read_view, replica_of
from api.ingress_view import cert_summary, node_model, route_targets
from api.routes_nodes import own_node
from api.security.runtime import security_of
from domain.certificates import CertificateError, check_pair
from domain.jobspec import JobSpecError
from domain.jobspec.ingress import ingress_host, ingress_path
from httpkit.errors import ApiError, read_json_object
from httpkit.responses import json_response

routes = web.RouteTableDef()
API_DOMAIN = web.AppKey("api_domain", str)  # [api] domain: manage.<domain> serves the API
TABLES = ("ingress", "jobs", "certs", "allocations", "nodes")
MAX_ROUTES = 100


def _field(path: str, check: Any, value: Any) -> Any:
    try:
        return check(value, path)
    except JobSpecError as e:
        raise ApiError(400, "invalid_field", f"{e.path}: {e.message}") from None


def _string(body: dict[str, Any], path: str, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError(400, "invalid_field", f"{path}.{key}: must be a non-empty string")
    return value


def _routes(body: dict[str, Any], jobs: Any) -> list[dict[str, str]]:
    raw = body.get("routes")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_ROUTES:
        raise ApiError(400, "invalid_field", f"routes: must list 1 to {MAX_ROUTES} routes")
    out, seen = [], set()
    for i, route in enumerate(raw):
        where = f"routes[{i}]"
        if not isinstance(route, dict):
            raise ApiError(400, "invalid_field", f"{where}: must be an object")
        path = _field(f"{where}.path", ingress_path, route.get("path"))
        job, group, port = (_string(route, where, k) for k in ("job", "group", "port"))
        spec = jobs.get(job)
        if spec is None:
            raise ApiError(400, "invalid_field", f"{where}.job: job '{job}' does not exist")
        group_spec = next((g for g in spec["groups"] if g["name"] == group), None)
        if group_spec is None:
            raise ApiError(
                400, "invalid_field", f"{where}.group: job '{job}' has no group '{group}'"
            )
        ports = {p["name"] for t in group_spec["tasks"] for p in t.get("ports") or []}
        if port not in ports:
            have = ", ".join(sorted(ports)) or "none"
            raise ApiError(
                400, "invalid_field", f"{where}.port: group '{group}' has no port '{port}' ({have})"
            )
        if path in seen:
            raise ApiError(400, "invalid_field", f"{where}.path: {path} is listed twice")
        seen.add(path)
        out.append({"path": path, "job": job, "group": group, "port": port})
    return out


def _tls(request: web.Request, host: str, value: Any) -> tuple[str, dict[str, Any] | None]:
    """("acme" | "off" | "manual", the manual certificate with its key sealed)."""
    if value is None or value in ("acme", "off"):
        return value or "acme", None
    if not isinstance(value, dict) or set(value) != {"cert", "key"}:
        raise ApiError(
            400, "invalid_field", 'tls: must be "acme", "off" or {"cert": PEM, "key": PEM}'
        )
    cert, key = value["cert"], value["key"]
    if not isinstance(cert, str) or not isinstance(key, str):
        raise ApiError(400, "invalid_field", "tls.cert and tls.key: must be PEM strings")
    try:
        check_pair(cert, key, host, time.time())
    except CertificateError as e:
        raise ApiError(400, "invalid_field", f"{e.field}: {e.message}") from None
    sealed = security_of(request).keys.seal_private_key(f"cert:{host}", key)
    return "manual", {"cert_pem": cert, "key": sealed}


@routes.post("/v1/ingress")
async def put_ingress(request: web.Request) -> web.Response:
    """Create or update a host no job spec owns (the API's own domain, a
    manual certificate, a route to another job's port)."""
    body = await read_json_object(request)
    host = _field("host", ingress_host, body.get("host"))
    replica = await read_view(request)
    with replica.read() as view:
        domain = view.ingress.domains().get(host)
        route_list = _routes(body, view.jobs)
    if domain is not None and domain["source"] == "job":
        raise ApiError(
            409, "conflict", f"{host} is declared by job '{domain['owner']}': change its spec"
        )
    tls, cert = _tls(request, host, body.get("tls"))
    result = await replica.write("ingress.put", host=host, routes=route_list, tls=tls, cert=cert)
    doc = result["ingress"]
    answer = {"host": host, "routes": doc["routes"], "tls": tls}
    return json_response(answer, status=201 if result["created"] else 200)


@routes.get("/v1/ingress")
async def list_ingress(request: web.Request) -> web.Response:
    replica = await blocking_view(request, *TABLES)
    now = time.time()
    with replica.read() as view:
        out = []
        for host, domain in sorted(view.ingress.domains().items()):
            if domain["source"] == "api":
                domain["cert"] = (view.ingress.get(host) or {}).get("cert")
            cert = cert_summary(domain, view.certs.get(host), now)
            out.append(
                {
                    "host": host,
                    "source": domain["source"],
                    "job": domain["owner"],
                    "routes": domain["routes"],
                    "tls": {
                        "mode": domain["tls"],
                        "status": cert["status"],
                        "not_after": cert.get("not_after"),
                    },
                }
            )
        index = view.index_of(*TABLES)
    return json_response(out, headers=read_headers(replica, index))


@routes.get("/v1/ingress/{host}")
async def get_ingress(request: web.Request) -> web.Response:
    host = request.match_info["host"].lower()
    replica = await blocking_view(request, *TABLES)
    with replica.read() as view:
        domain = view.ingress.domains().get(host)
        if domain is None:
            raise ApiError(404, "ingress_not_found", f"no domain '{host}' is served")
        if domain["source"] == "api":
            domain["cert"] = (view.ingress.get(host) or {}).get("cert")
        cert = cert_summary(domain, view.certs.get(host), time.time())
        route_list = [dict(r, allocations=route_targets(view, r)) for r in domain["routes"]]
        index = view.index_of(*TABLES)
    out = {
        "host": host,
        "source": domain["source"],
        "job": domain["owner"],
        "jobs": sorted({r["job"] for r in route_list}),
        "tls": domain["tls"],
        "cert": cert,
        "routes": route_list,
    }
    return json_response(out, headers=read_headers(replica, index))


@routes.delete("/v1/ingress/{host}")
async def delete_ingress(request: web.Request) -> web.Response:
    host = request.match_info["host"].lower()
    replica = await read_view(request)
    with replica.read() as view:
        domain = view.ingress.domains().get(host)
    if domain is not None and domain["source"] == "job":
        raise ApiError(
            409, "conflict", f"{host} is declared by job '{domain['owner']}': change its spec"
        )
    await replica.write("ingress.delete", host=host)
    return json_response({"host": host, "deleted": True})


@routes.post("/v1/ingress/{host}/renew")
async def renew_ingress(request: web.Request) -> web.Response:
    """Ask for a new certificate now (the leader's certificate controller orders it)."""
    host = request.match_info["host"].lower()
    replica = await read_view(request)
    with replica.read() as view:
        domain = view.ingress.domains().get(host)
    if domain is None:
        raise ApiError(404, "ingress_not_found", f"no domain '{host}' is served")
    if domain["tls"] != "acme":
        raise ApiError(409, "conflict", f"{host} has no ACME certificate (tls: {domain['tls']})")
    await replica.write("cert.renew", host=host)
    return json_response({"host": host, "renew_requested": True}, status=202)


@routes.get("/v1/nodes/{id}/ingress")
async def node_ingress(request: web.Request) -> web.Response:
    """The render model of a node's ingress proxy, with certificate keys:
    for that node's own agent only (its node credential, or its server's).

    A long poll (`?index=N&wait=30s`) may also name the model the node has
    (`&digest=`, the `X-HeroCtl-Ingress-Digest` of its last answer): then it
    returns only when the model differs, or at the deadline. Allocations
    change all the time; the model (healthy upstreams, certificates) rarely."""
    with replica_of(request).read() as view:
        own_node(request, view, request.match_info["id"])
    tables = (*TABLES, "acme", "servers")
    known = request.query.get("digest")
    deadline = time.monotonic() + parse_wait(request.query.get("wait", "5m"))  # one wait in all
    replica = await blocking_view(request, *tables)
    keys = security_of(request).keys
    while True:
        with replica.read() as view:
            model = node_model(view, keys, api_domain=request.app.get(API_DOMAIN))
            index = view.index_of(*tables)
        digest = hashlib.sha256(orjson.dumps(model, option=orjson.OPT_SORT_KEYS)).hexdigest()
        left = deadline - time.monotonic()
        if known != digest or "index" not in request.query or left <= 0:
            break
        await replica.wait_for_change(tables, index, left)
    headers = {**read_headers(replica, index), "X-HeroCtl-Ingress-Digest": digest}
    return json_response(model, headers=headers)


@routes.post("/v1/nodes/{id}/ingress/applied")
async def node_ingress_applied(request: web.Request) -> web.Response:
    """A node's ingress serves the model it read at `{"index": N}` (the
    `X-HeroCtl-Index` of that answer): what a stopping allocation's drain
    waits for. For that node's own agent only."""
    body = await read_json_object(request)
    applied = body.get("index")
    if not isinstance(applied, int) or isinstance(applied, bool) or applied < 0:
        raise ApiError(400, "invalid_field", "field 'index' must be a non-negative integer")
    replica = replica_of(request)
    with replica.read() as view:
        node = own_node(request, view, request.match_info["id"])
    result = await replica.write("node.ingress_applied", id=node["id"], index=applied)
    return json_response({"index": result["applied"]})
