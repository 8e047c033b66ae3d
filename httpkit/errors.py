"""The one error-mapping module: every failure becomes the contract's envelope.

`{"error": "<snake_code>", "message": "...", "request_id": "req_..."}` with
the status from the contract's table; 404s and 405s from routing too.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from httpkit.responses import json_response, loads
from raft.errors import CommandError, CommandRejected, NoLeader, OutcomeUnknown, RaftRefused

log = logging.getLogger("heroctld.api")
_ids = random.Random(random.SystemRandom().getrandbits(256))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# On a 503 `no_leader` for a write that was proposed but not confirmed:
# "unknown" (it may still be committed; repeating it may apply it twice).
OUTCOME_HEADER = "X-HeroCtl-Outcome"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal",
    503: "no_leader",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def new_request_id() -> str:
    """`req_` and 12 hex digits (an id for logs and support, not a secret)."""
    return f"req_{_ids.getrandbits(48):012x}"


def error_response(
    status: int, code: str, message: str, request_id: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": code, "message": message, "request_id": request_id}
    return json_response(body, status=status, headers=headers)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = new_request_id()
    request["request_id"] = rid
    response = await handler(request)
    response.headers["X-Request-Id"] = rid
    return response


def error_for(exc: Exception, request: web.Request, rid: str) -> web.Response:
    """The contract's error response for an exception raised by a handler
    (re-raises an HTTP exception below 400: a redirect is not an error)."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, rid, exc.headers)
    if isinstance(exc, CommandRejected):
        return error_response(exc.status, exc.code, exc.message, rid)
    if isinstance(exc, NoLeader):
        headers = {"Retry-After": "1"}
        if isinstance(exc, OutcomeUnknown):  # proposed: it may still be committed
            headers[OUTCOME_HEADER] = "unknown"
        return error_response(503, "no_leader", str(exc), rid, headers)
    if isinstance(exc, RaftRefused):
        return error_response(503, "no_leader", f"raft refused the request: {exc.reason}", rid)
    if isinstance(exc, CommandError):
        return error_response(413, "payload_too_large", str(exc), rid)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        code = _HTTP_CODES.get(exc.status, "error")
        message = {
            404: f"no route for {request.method} {request.path}",
            405: f"method {request.method} is not allowed on {request.path}",
            413: "request body is larger than 1 MiB",
        }.get(exc.status, exc.reason)
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return error_response(exc.status, code, message, rid, headers)
    log.exception("unhandled error in %s %s (%s)", request.method, request.path, rid)
    return error_response(500, "internal", "internal error; see the server log", rid)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Exception as exc:
        return error_for(exc, request, request["request_id"])


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong."""
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "invalid_json", "request body is empty; a JSON object is expected")
    try:
        body = loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "request body must be a JSON object")
    return body


def require_field(body: dict[str, Any], name: str, kind: type | tuple[type, ...] = str) -> Any:
    value = body.get(name)
    if value is None:
        raise ApiError(400, "missing_field", f"field '{name}' is required")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ApiError(400, "invalid_field", f"field '{name}' must be of type {expected}")
    return value
