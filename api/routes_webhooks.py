"""Webhooks: register a URL for events; see and requeue its deliveries.

The secret is sealed here (AES-256-GCM, key derived from the cluster key)
before the command is proposed, and no answer ever contains it. A URL that
reaches a non-public address is refused here (unless `[webhooks]
allow_private`), before anything connects to it. Delivery is
the leader's job (heroctld.controllers.webhooks); these handlers only read
and write the replicated tables, so they never wait on a receiver.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from api.context import blocking_view, read_headers, replica_of
from api.security.runtime import security_of
from domain.webhook_signing import STANDARD_PREFIX, WebhookSecrets, standard_key
from domain.webhook_targets import ALLOW_HINT, IPAddress, first_refusal, ip_literal
from httpkit.errors import ApiError, read_json_object
from httpkit.responses import json_response, ms_to_rfc3339
from raft.fsm_events import EVENT_TYPES, TOPICS, unknown_topics
from raft.fsm_webhooks import DELIVERIES, MAX_URL, WEBHOOKS, describe

routes = web.RouteTableDef()

MAX_SECRET = 1024
MAX_EVENTS = 64
RESOLVE_TIMEOUT = 5.0  # seconds to resolve a new webhook's host before accepting it unchecked


@functools.lru_cache(maxsize=8)
def _box(cluster_key: str) -> WebhookSecrets:
    return WebhookSecrets(cluster_key)


def _secrets(request: web.Request) -> WebhookSecrets:
    """Derived once per cluster key (HKDF is not free), not per request."""
    return _box(security_of(request).settings.cluster_key)


def check_url(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise ApiError(400, "missing_field", "field 'url' is required")
    if len(url) > MAX_URL:
        raise ApiError(400, "invalid_url", f"field 'url' is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ApiError(400, "invalid_url", f"field 'url' is not a valid URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(
            400, "invalid_url", "field 'url' must be an http:// or https:// URL with a host"
        )
    if port == 0 or parts.username or parts.password:
        raise ApiError(400, "invalid_url", "field 'url' must not carry credentials or port 0")
    return url


def check_events(events: Any) -> list[str]:
    if events is None:
        raise ApiError(400, "missing_field", "field 'events' is required")
    if (
        not isinstance(events, list)
        or not events
        or len(events) > MAX_EVENTS
        or not all(isinstance(e, str) and e for e in events)
    ):
        raise ApiError(
            400, "invalid_field", "field 'events' must be a non-empty list of event types"
        )
    unknown = unknown_topics(events)
    if unknown:
        raise ApiError(
            400,
            "invalid_events",
            f"unknown events: {', '.join(unknown)} (known: {', '.join(EVENT_TYPES)}; "
            f"or a prefix: {', '.join(TOPICS)}; or *)",
        )
    return list(dict.fromkeys(events))


def check_secret(secret: Any) -> str:
    if secret is None:
        raise ApiError(400, "missing_field", "field 'secret' is required (it signs every delivery)")
    if not isinstance(secret, str) or not secret or len(secret) > MAX_SECRET:
        raise ApiError(400, "invalid_field", f"field 'secret' must be 1-{MAX_SECRET} characters")
    if standard_key(secret.encode()) is None:
        raise ApiError(
            400,
            "invalid_field",
            f"field 'secret' starts with '{STANDARD_PREFIX}' but is not {STANDARD_PREFIX}"
            "<base64 of 24-64 bytes> (the Standard Webhooks form)",
        )
    return secret


async def check_target(url: str) -> None:
    """Refuse a URL whose host is, or resolves to, a non-public address
    (domain.webhook_targets). A name that does not resolve now is accepted:
    the deliverer checks again at every attempt anyway."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = ip_literal(host)
    addresses: list[str | IPAddress] = []
    if literal is not None:
        addresses.append(literal)
    else:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
        except (OSError, TimeoutError):
            return
        addresses.extend(str(info[4][0]) for info in infos)
    reason = first_refusal(addresses)
    if reason is not None:
        raise ApiError(
            400,
            "url_not_public",
            f"field 'url' reaches {reason}: a webhook may only reach public addresses "
            f"({ALLOW_HINT})",
        )


def webhook_view(doc: dict[str, Any], row: dict[str, Any] | None) -> dict[str, Any]:
    out = describe(doc)
    out["create_time"] = ms_to_rfc3339(out.get("create_time"))
    row = row or {}
    history = row.get("history") or []
    last = history[-1] if history else None
    pending = row.get("pending")
    out["delivery"] = {
        "cursor": row.get("cursor"),
        "delivered": row.get("delivered", 0),
        "failed": row.get("failed", 0),
        "last_status": last["status"] if last else None,
        "last_attempt": ms_to_rfc3339(last["ts"]) if last else None,
        "pending": _pending(pending),
        "redeliver_queued": len(row.get("redeliver") or ()),
    }
    return out


def _pending(pending: dict[str, Any] | None) -> dict[str, Any] | None:
    if not pending:
        return None
    return {
        "delivery": pending["delivery"],
        "seq": pending["seq"],
        "attempts": pending["attempts"],
        "first_attempt": ms_to_rfc3339(pending["first_attempt"]),
        "next_attempt": ms_to_rfc3339(pending["next_attempt"]),
        "last_error": pending["last_error"] or None,
    }


def _get(request: web.Request, wid: str) -> tuple[dict[str, Any], dict[str, Any] | None, int]:
    with replica_of(request).read() as view:
        doc = view.webhooks.get(wid)
        row = view.deliveries.get(wid)
        index = max(view.webhooks.index, view.deliveries.index)
    if doc is None:
        raise ApiError(404, "webhook_not_found", f"webhook '{wid}' does not exist")
    return doc, row, index


@routes.post("/v1/webhooks")
async def create_webhook(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"url", "events", "secret"})
    if unknown:
        raise ApiError(400, "invalid_field", f"unknown fields: {', '.join(unknown)}")
    url = check_url(body.get("url"))
    events = check_events(body.get("events"))
    secret = check_secret(body.get("secret"))
    if not security_of(request).settings.webhooks_allow_private:
        await check_target(url)
    wid = "wh_" + secrets.token_hex(8)
    sealed = _secrets(request).seal(wid, secret)
    result = await replica_of(request).write(
        "webhook.create", id=wid, url=url, events=events, secret=sealed
    )
    doc = dict(result["webhook"], create_time=ms_to_rfc3339(result["webhook"]["create_time"]))
    return json_response(doc, status=201, headers={"X-HeroCtl-Index": str(result["index"])})


@routes.get("/v1/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    replica = await blocking_view(request, WEBHOOKS, DELIVERIES)
    with replica.read() as view:
        docs = sorted(view.webhooks.values(), key=lambda d: (d["create_index"], d["id"]))
        rows = view.deliveries
        out = [webhook_view(d, rows.get(d["id"])) for d in docs]
        index = max(view.webhooks.index, view.deliveries.index)
    return json_response(out, headers=read_headers(replica, index))


@routes.get("/v1/webhooks/{id}")
async def get_webhook(request: web.Request) -> web.Response:
    replica = await blocking_view(request, WEBHOOKS, DELIVERIES)
    doc, row, index = _get(request, request.match_info["id"])
    return json_response(webhook_view(doc, row), headers=read_headers(replica, index))


@routes.delete("/v1/webhooks/{id}")
async def delete_webhook(request: web.Request) -> web.Response:
    wid = request.match_info["id"]
    result = await replica_of(request).write("webhook.delete", id=wid)
    return json_response(
        {"id": wid, "deleted": True, "index": result["index"]},
        headers={"X-HeroCtl-Index": str(result["index"])},
    )


def _attempt_view(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "delivery": a.get("delivery"),
        "event": a.get("event"),
        "seq": a.get("seq"),
        "index": a.get("index"),
        "attempt": a.get("attempt"),
        "status": a.get("status"),
        "code": a.get("code"),
        "error": a.get("error"),
        "time": ms_to_rfc3339(a.get("ts")),
        "duration_ms": a.get("duration_ms"),
        "redelivery": a.get("redelivery", False),
    }


@routes.get("/v1/webhooks/{id}/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    """Every kept attempt, newest first, with the retry in progress and the queue."""
    replica = await blocking_view(request, WEBHOOKS, DELIVERIES)
    doc, row, index = _get(request, request.match_info["id"])
    row = row or {}
    out = {
        "webhook": doc["id"],
        "cursor": row.get("cursor"),
        "pending": _pending(row.get("pending")),
        "redeliver": [r["delivery"] for r in row.get("redeliver") or ()],
        "attempts": [_attempt_view(a) for a in reversed(row.get("history") or [])],
    }
    return json_response(out, headers=read_headers(replica, index))


@routes.post("/v1/webhooks/{id}/deliveries/{delivery}/redeliver")
async def redeliver(request: web.Request) -> web.Response:
    wid, delivery = request.match_info["id"], request.match_info["delivery"]
    result = await replica_of(request).write("webhook.redeliver", id=wid, delivery=delivery)
    return json_response(
        {
            "webhook": wid,
            "delivery": delivery,
            "queued": result["queued"],
            "index": result["index"],
        },
        status=202,
        headers={"X-HeroCtl-Index": str(result["index"])},
    )
