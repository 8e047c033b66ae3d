"""The document's shared parts: the error envelope and the error responses
every route may give, the headers, the bearer scheme, and the job spec
(the one JSON Schema of :mod:`domain.jobspec.schema`, its ``$defs`` moved
under ``#/components/schemas/Job``)."""

from __future__ import annotations

from typing import Any

from api.openapi.vocab import INDEX, Schema, obj, ref
from domain.jobspec.schema import job_schema

# The contract's statuses (shared/spec/api-reference.md, httpkit.errors) and
# what each means on any route.
ERRORS: dict[int, tuple[str, str]] = {
    400: (
        "BadRequest",
        "Invalid request: malformed JSON, a missing or invalid field or parameter.",
    ),
    401: ("Unauthorized", "Token missing, expired or invalid."),
    403: ("Forbidden", "The token is valid but lacks the permission for this route."),
    404: ("NotFound", "The resource does not exist."),
    409: ("Conflict", "The request conflicts with the current state."),
    410: ("Gone", "What the request names is no longer kept."),
    413: ("PayloadTooLarge", "The request body is larger than 1 MiB (or a value over its limit)."),
    429: ("TooManyRequests", "Rate limit reached: retry after `Retry-After` seconds."),
    500: ("InternalError", "Internal error: see the server's log with the request id."),
    503: ("Unavailable", "The cluster has no leader now (or a node cannot be reached)."),
}

ERROR_SCHEMA: Schema = obj(
    {
        "error": {
            "type": "string",
            "pattern": "^[a-z][a-z0-9_]*$",
            "description": "A snake_case code, e.g. `job_not_found`, `invalid_field`.",
            "examples": ["job_not_found", "invalid_field", "rate_limited", "no_leader"],
        },
        "message": {"type": "string", "description": "What went wrong, for people."},
        "request_id": {
            "type": "string",
            "pattern": "^req_[0-9a-f]+$",
            "description": "Also in `X-Request-Id`: quote it when you ask for support.",
        },
    },
    "*",
    description="The body of every error answer (4xx and 5xx).",
)

HEADERS: dict[str, Schema] = {
    "X-Request-Id": {
        "description": "This request's id (also in an error's `request_id`).",
        "schema": {"type": "string"},
    },
    "X-HeroCtl-Index": {
        "description": "The raft index the answer reflects: pass it as `index` to long-poll.",
        "schema": INDEX,
    },
    "X-HeroCtl-Known-Leader": {
        "description": "Whether the answering server knows a leader (reads).",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
    "X-HeroCtl-Last-Contact": {
        "description": "Milliseconds since the answering server heard from the leader (-1: never).",
        "schema": {"type": "integer"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "X-HeroCtl-Outcome": {
        "description": "On a 503 `no_leader` for a write that was proposed but not confirmed: "
        "`unknown` (it may still be committed, so sending it again may apply it twice).",
        "schema": {"type": "string", "enum": ["unknown"]},
    },
    "X-RateLimit-Limit": {
        "description": "Requests per minute allowed.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in this minute.",
        "schema": {"type": "integer"},
    },
}


def header_ref(name: str) -> Schema:
    return {"$ref": f"#/components/headers/{name}"}


def error_responses() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, (name, text) in ERRORS.items():
        headers = {"X-Request-Id": header_ref("X-Request-Id")}
        if status in (429, 503):
            headers["Retry-After"] = header_ref("Retry-After")
        if status == 503:
            headers["X-HeroCtl-Outcome"] = header_ref("X-HeroCtl-Outcome")
        out[name] = {
            "description": text,
            "headers": headers,
            "content": {"application/json": {"schema": ref("Error")}},
        }
    return out


SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A JWT from `POST /v1/auth/login`, or an ACL token's secret "
        "(`ht_...`). Agents and servers use their node and server credentials.",
    }
}


def _moved_refs(node: Any, base: str) -> Any:
    """``node`` with every ``#/$defs/...`` reference pointing under ``base``."""
    if isinstance(node, dict):
        out = {k: _moved_refs(v, base) for k, v in node.items()}
        target = out.get("$ref")
        if isinstance(target, str) and target.startswith("#/$defs/"):
            out["$ref"] = base + target[1:]
        return out
    if isinstance(node, list):
        return [_moved_refs(v, base) for v in node]
    return node


def job_component() -> Schema:
    """The job spec as a component: the same schema as ``GET /v1/jobs/schema``,
    without its ``$id``/``$schema`` (OpenAPI 3.1 is JSON Schema 2020-12) and
    with its references rebased on the document."""
    schema = job_schema()
    for key in ("$id", "$schema"):
        schema.pop(key, None)
    return _moved_refs(schema, "#/components/schemas/Job")


def job_submission() -> Schema:
    """A ``POST /v1/jobs`` body: the job itself, or ``{"job": ..., "job_modify_index"}``."""
    return {
        "oneOf": [
            ref("Job"),
            obj(
                {
                    "job": ref("Job"),
                    "job_modify_index": {
                        **INDEX,
                        "description": "Check-and-set: refused (409) unless the job's "
                        "`job_modify_index` is this (0: only if the job does not exist).",
                    },
                },
                ["job"],
                closed=True,
            ),
        ]
    }
