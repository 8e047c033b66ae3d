"""The event stream: `GET /v1/events` as a JSON page, a long poll, or SSE.

Events come from the replicated ring (raft.fsm_events), so every server
serves the same stream and any of them resumes it: `?index=N` starts after
raft index N, an SSE client's `Last-Event-ID` (`<index>-<seq>`) after that
event. `?topic=job,node.down` filters (a prefix matches every type under it).

- `?stream=true`: `text/event-stream`; each event is `id: <index>-<seq>`,
  `event: <type>`, `data: <json>`; a `: ping` comment every 15 s keeps
  proxies from closing an idle stream. Without `index` it starts at the
  current end (new events only); `index=0` replays everything kept.
- otherwise a JSON list (oldest first, at most `limit`); with `index` and
  `wait` it blocks until a matching event exists (a long poll), and
  `X-HeroCtl-Index` is what to pass as `index` next time.
"""

from __future__ import annotations

import random
from typing import Any

from aiohttp import web
from aiohttp_sse import sse_response

from api.context import SSE_PING_INTERVAL, parse_wait, read_headers, replica_of, wants_stale
from api.security.readmit import still_admitted
from httpkit.errors import ApiError
from httpkit.responses import json_response, json_text, ms_to_rfc3339
from raft.fsm_events import (
    EVENT_TYPES,
    EVENTS,
    TOPICS,
    parse_topics,
    unknown_topics,
)
from raft.replica import Replica

routes = web.RouteTableDef()

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1000
# `: ping` comments on an idle stream, so proxies keep it open (env: for tests).
STREAM_BATCH = 500
IDLE_CHECK = 5.0  # seconds between checks that an idle stream's client is still there


def event_view(ev: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"{ev['index']}-{ev['seq']}",
        "seq": ev["seq"],
        "index": ev["index"],
        "type": ev["type"],
        "time": ms_to_rfc3339(ev["ts"]),
        "ts": ev["ts"],
        "data": ev["data"],
    }


def _int_param(request: web.Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer") from None
    if value < 0:
        raise ApiError(400, "invalid_parameter", f"{name} must not be negative")
    return value


def _topics(request: web.Request) -> tuple[str, ...] | None:
    topics = parse_topics(request.query.get("topic"))
    bad = unknown_topics(topics or ())
    if bad:
        raise ApiError(
            400,
            "invalid_parameter",
            f"unknown topics: {', '.join(bad)} (known: {', '.join(EVENT_TYPES)}; "
            f"or a prefix: {', '.join(TOPICS)})",
        )
    return topics


def _start_seq(replica: Replica, index: int | None, last_event_id: str | None) -> int:
    """The seq to resume after: a Last-Event-ID wins over `index`; neither = the end."""
    with replica.read() as view:
        if last_event_id:
            head, _, tail = last_event_id.strip().partition("-")
            if tail.isdigit():
                return int(tail)
            if head.isdigit():
                return view.events.seq_at_index(int(head))
        if index is None:
            return view.events.last_seq()
        return view.events.seq_at_index(index)


def _wants_stream(request: web.Request) -> bool:
    value = request.query.get("stream")
    return value is not None and value.lower() not in ("false", "0", "no")


@routes.get("/v1/events")
async def get_events(request: web.Request) -> web.StreamResponse:
    topics = _topics(request)
    index = _int_param(request, "index", None)
    if _wants_stream(request):
        return await _stream(request, topics, index)
    limit = min(_int_param(request, "limit", DEFAULT_LIMIT) or DEFAULT_LIMIT, MAX_LIMIT)
    replica = replica_of(request)
    if not wants_stale(request):
        await replica.consistent()
    start = _start_seq(replica, index if index is not None else 0, None)
    loop = request.loop
    deadline = None
    if index is not None:
        wait = parse_wait(request.query.get("wait", "5m"))
        deadline = loop.time() + wait + random.uniform(0, wait / 16)
    while True:
        with replica.read() as view:
            found, scanned = view.events.scan(start, topics, limit)
            table_index = view.events.index
            done = scanned >= view.events.last_seq()
            # what to pass as `index` next time: past everything looked at
            next_index = table_index if done else found[-1]["index"] if found else index or 0
        remaining = deadline - loop.time() if deadline is not None else 0
        if found or remaining <= 0 or replica.closing:  # closing: answer now
            break
        start = scanned
        await replica.wait_for_change((EVENTS,), table_index, remaining)
    headers = read_headers(replica, max(next_index, index or 0))
    return json_response([event_view(e) for e in found], headers=headers)


async def _stream(
    request: web.Request, topics: tuple[str, ...] | None, index: int | None
) -> web.StreamResponse:
    replica = replica_of(request)
    seq = _start_seq(replica, index, request.headers.get("Last-Event-ID"))
    headers = read_headers(replica, replica.table_index(EVENTS))
    async with sse_response(request, headers=headers, ping_interval=SSE_PING_INTERVAL) as sse:
        while sse.is_connected() and not replica.closing:
            if not still_admitted(request):  # revoked, logged out, expired: checked each wake
                await sse.write(b": the credential is no longer valid\n\n")
                break
            with replica.read() as view:
                first = view.events.first_seq()
                found, scanned = view.events.scan(seq, topics, STREAM_BATCH)
                table_index = view.events.index
                caught_up = scanned >= view.events.last_seq()
            if seq + 1 < first:
                await sse.write(f": events {seq + 1}..{first - 1} are no longer kept\n\n".encode())
            for ev in found:
                await sse.send(
                    json_text(event_view(ev)),
                    id=f"{ev['index']}-{ev['seq']}",
                    event=ev["type"],
                )
            seq = scanned
            if caught_up:
                await replica.wait_for_change((EVENTS,), table_index, IDLE_CHECK)
    return sse
