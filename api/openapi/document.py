"""The OpenAPI 3.1 document of the whole API, built from the route tables
(:mod:`api.openapi.paths_jobs`, ``paths_cluster``, ``paths_access``).

What a table entry does not say, the document derives: path parameters from
the template; who may call a route from the policy table
(:func:`domain.policy.requirement`, the same function the auth middleware
asks); and the error responses that can happen (400 with parameters or a
body, 401/403 unless public, 404 with path parameters, 413 with a body, and
429, 500, 503), all with the envelope of :mod:`httpkit.errors`.
``tests/api/test_openapi.py`` fails when a registered route is missing here,
or a described one is not registered.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from api.openapi import components, paths_access, paths_cluster, paths_jobs, schemas
from api.openapi.vocab import Op, Schema, ref
from domain.policy import MANAGEMENT, NODE_ROUTES, PUBLIC, requirement

OPERATIONS: tuple[Op, ...] = (*paths_cluster.OPS, *paths_jobs.OPS, *paths_access.OPS)
TITLE = "HeroCtl API"
VERSION = "1"
_PARAM = re.compile(r"\{([^}]+)\}")
PATH_PARAMS = {
    "name": "The resource's name.",
    "id": "The resource's id (nodes and allocations also take a name or a unique prefix).",
    "alloc": "An allocation's id (or a unique prefix).",
    "accessor": "An ACL token's accessor id.",
    "username": "A user's name.",
    "host": "A host name (case-insensitive).",
    "delivery": "A delivery's id.",
}
TAGS = {
    "health": "No token: for monitors and load balancers.",
    "jobs": "What should run: submit, read, scale, revert, plan.",
    "deployments": "How a new job version replaces the old one.",
    "allocations": "The running instances of jobs.",
    "nodes": "The machines that run allocations.",
    "logs": "Allocations' output, kept on their nodes.",
    "metrics": "Current usage and history.",
    "events": "What happened, as a page, a long poll or a stream.",
    "cluster": "Raft membership and leadership.",
    "operator": "Backups, snapshots and the secrets keyring (management).",
    "auth": "Login sessions (JWT).",
    "acl": "Policies, roles, tokens and users.",
    "secrets": "Values sealed at rest.",
    "webhooks": "Events POSTed to your URLs.",
    "ingress": "Domains the cluster serves, routes and certificates.",
    "agent": "Internal: a server's agent, for the other servers.",
    "openapi": "This document.",
}
DESCRIPTION = """The REST API of a HeroCtl cluster: JSON in, JSON out, every route under `/v1/`.
Any server answers (writes go through the raft leader).

- **Errors** all have one body, `{"error", "message", "request_id"}` (`#/components/schemas/Error`).
- **Long polling**: reads that take `index` and `wait` block until the data's
  `X-HeroCtl-Index` passes `index` (or `wait`, at most 10m, ends).
- **Consistency**: reads are consistent unless `stale=true`.
- **Rate limits**: per token (and per address without one); a 429 says when to retry
  (`Retry-After`); `X-RateLimit-*` headers on limited requests.
- Every GET route also answers HEAD.
"""


def tag_of(path: str) -> str:
    part = path.split("/")[2]
    return {"raft": "cluster", "openapi.json": "openapi"}.get(part, part)


def access_of(op: Op) -> tuple[bool, str]:
    """(public, the words saying who may call ``op``) from the policy table."""
    req = requirement(op.method, op.path)
    if req.kind == PUBLIC:
        return True, "No token."
    if op.access is not None:
        return False, op.access
    if req.kind == MANAGEMENT:
        words = "A management token."
    elif req.resource is None:
        words = "Any valid token."
    else:
        words = f"A token allowed `{req.resource}: {req.access}`."
    if (op.method, op.path) in NODE_ROUTES:
        words += " Or the node's own credential."
    return False, words


def error_statuses(op: Op, public: bool) -> list[int]:
    statuses = set(op.errors)
    if op.query or op.body is not None or _PARAM.search(op.path):
        statuses.add(400)
    if not public:
        statuses |= {401, 403}
    if _PARAM.search(op.path):
        statuses.add(404)
    if op.body is not None:
        statuses.add(413)
    if not op.path.startswith("/v1/health/"):
        statuses.add(429)
    statuses.add(500)
    if op.path != "/v1/health/live":
        statuses.add(503)
    return sorted(statuses)


def _parameters(op: Op) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": PATH_PARAMS.get(name, name),
            "schema": {"type": "string"},
        }
        for name in _PARAM.findall(op.path)
    ]
    for p in op.query:
        entry: dict[str, Any] = {"name": p.name, "in": p.where, "description": p.description}
        if p.required:
            entry["required"] = True
        entry["schema"] = p.schema
        out.append(entry)
    return out


def _answer_headers(op: Op) -> dict[str, Any]:
    names = ["X-Request-Id", "X-HeroCtl-Index"]
    if any(p.name == "index" for p in op.query):
        names += ["X-HeroCtl-Known-Leader", "X-HeroCtl-Last-Contact"]
    return {n: components.header_ref(n) for n in names}


def _responses(op: Op, public: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for answer in op.answers:
        entry: dict[str, Any] = {"description": answer.description, "headers": _answer_headers(op)}
        if answer.schema is not None:
            entry["content"] = {answer.media: {"schema": answer.schema}}
            for media in op.other_media:
                entry["content"][media] = {"schema": {"type": "string"}}
        out[str(answer.status)] = entry
    for status in error_statuses(op, public):
        name, text = components.ERRORS[status]
        if status in op.errors:
            out[str(status)] = {
                "description": f"{text} Here: {op.errors[status]}",
                "headers": {"X-Request-Id": components.header_ref("X-Request-Id")},
                "content": {"application/json": {"schema": ref("Error")}},
            }
        else:
            out[str(status)] = {"$ref": f"#/components/responses/{name}"}
    return out


def operation_id(op: Op) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", op.path.removeprefix("/v1/")) if w]
    return op.method.lower() + "".join(w[:1].upper() + w[1:] for w in words)


def _operation(op: Op) -> dict[str, Any]:
    public, who = access_of(op)
    out: dict[str, Any] = {
        "operationId": operation_id(op),
        "summary": op.summary,
        "description": (op.description + "\n\n" if op.description else "") + f"Access: {who}",
        "tags": [tag_of(op.path)],
        "security": [] if public else [{"bearer": []}],
    }
    params = _parameters(op)
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {op.body_media: {"schema": op.body}},
        }
    out["responses"] = _responses(op, public)
    if op.internal:
        out["x-heroctl-internal"] = True
    return out


def build() -> dict[str, Any]:
    """The document as a fresh dict."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        openapi_path = op.path  # aiohttp's templates are OpenAPI's
        method = op.method.lower()
        if method in paths.get(openapi_path, {}):
            raise ValueError(f"{op.method} {op.path} is described twice")
        paths.setdefault(openapi_path, {})[method] = _operation(op)
    component_schemas: dict[str, Schema] = {
        "Error": components.ERROR_SCHEMA,
        "Job": components.job_component(),
        "JobSubmission": components.job_submission(),
        **schemas.ALL,
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "servers": [{"url": "/", "description": "The server that serves this document."}],
        "tags": [{"name": k, "description": v} for k, v in TAGS.items()],
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": component_schemas,
            "responses": components.error_responses(),
            "headers": components.HEADERS,
            "securitySchemes": components.SECURITY_SCHEMES,
        },
    }


@functools.cache
def document_bytes() -> bytes:
    """The document as compact JSON (built once per process)."""
    return json.dumps(build(), separators=(",", ":"), ensure_ascii=False).encode()


def document() -> dict[str, Any]:
    """The document (a fresh copy)."""
    return json.loads(document_bytes())
