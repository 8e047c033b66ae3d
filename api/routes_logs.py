"""Logs: the last lines of an allocation, or a live SSE stream of a whole job.

Logs stay on the node that ran the allocation (:mod:`agent.logs`). Any
server answers: it finds the allocation's node in its state, and reads the
node's store itself when the node is this server's own agent, or asks that
node through its internal agent endpoints (:mod:`agent.http.endpoints`):
the node's server for a server's agent, the node's own agent API for a
worker-only node (:mod:`api.relay`).

Public (policy: ``logs``):

- ``GET /v1/logs/:alloc``: the last lines, a JSON list of
  ``{"alloc","task","stream","ts","us","line"}`` (``ts`` RFC 3339 with
  microseconds, ``us`` unix microseconds); ``?lines=100`` (or ``all``),
  ``?type=stdout|stderr``, ``?task=NAME``. A unique prefix of the id works.
- ``GET /v1/logs?job=NAME``: the same, merged over every allocation of the job.
- ``?stream=true`` on either: ``text/event-stream``, ``event: log`` with
  the same ``data`` object, starting with the last ``lines`` (10 by
  default) of each allocation, then every new line; with ``?since=US``
  (unix microseconds) every line after it instead of the last ``lines``
  (a client resuming after a dropped connection). A job stream merges
  every allocation of the job on every node and picks up allocations
  placed after it started (from their first line). ``event: error``
  (``{"alloc","message"}``) says a node cannot be reached now (the stream
  retries and resumes after the last line it got); ``event: dropped``
  (``{"alloc","lines"}``) that a client too slow to keep up lost lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web
from aiohttp_sse import sse_response

from api.context import REPLICA, read_view, replica_of
from api.relay import (
    RELAY_SESSION,
    Location,
    NodeUnreachable,
    agent_get,
    agent_headers,
    locate,
    relay_session_ctx,
    worker_nodes,
)
from api.routes_allocations import _alloc_or_404
from httpkit.errors import ApiError
from httpkit.local_node import KEEPALIVE, LOCAL_NODE, LocalNode, LogSubscription
from httpkit.params import (
    DEFAULT_LINES,
    DEFAULT_STREAM_LINES,
    MAX_LINES,
    Filters,
    filters,
    flag,
    since_param,
)
from httpkit.responses import json_response, json_text

routes = web.RouteTableDef()
log = logging.getLogger("heroctld.logs")

MAX_JOB_ALLOCS = 200  # allocations a job's (non-stream) tail reads, newest first
PING_INTERVAL = float(os.environ.get("HEROCTL_SSE_PING_INTERVAL", "15"))
RETRY_MIN, RETRY_MAX = 0.5, 5.0  # seconds between tries to reach a node again
QUEUE_FRAMES = 1024  # rendered batches waiting for a slow SSE client
LIVE_STATUSES = ("pending", "running")


def setup(app: web.Application) -> None:
    """App state for logs (the routes are added with the other modules)."""
    if LOCAL_NODE not in app:
        app[LOCAL_NODE] = LocalNode(name=app[REPLICA].identity.name)
    app.cleanup_ctx.append(relay_session_ctx)


# --- public: tails -------------------------------------------------------------------------------


async def tail_of(request: web.Request, alloc: dict[str, Any], f: Filters) -> list[dict[str, Any]]:
    """The last lines of one allocation, wherever its node is."""
    loc = locate(request, alloc.get("node_name"), alloc.get("node"))
    alloc_id = alloc["id"]
    if loc.local:
        store = request.app[LOCAL_NODE].logs
        assert store is not None
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(
            None, lambda: store.tail(alloc_id, f.lines, stream=f.stream, task=f.task)
        )
        return [ln.to_dict(alloc_id) for ln in found]
    body = await agent_get(request, loc, f"/v1/agent/logs/{quote(alloc_id, safe='')}", f.params())
    if not isinstance(body, list):
        raise NodeUnreachable(f"node '{loc.node_name}' answered something else than lines")
    return body


_FULL_ID = re.compile(r"^[0-9a-f]{32}$")


async def find_alloc(request: web.Request, ref: str) -> dict[str, Any]:
    """The allocation by id or prefix; one the cluster has forgotten (garbage
    collected) is still found, by its full id, on the node keeping its logs."""
    try:
        return _alloc_or_404(request, ref)
    except ApiError as exc:
        if exc.status != 404 or not _FULL_ID.match(ref):
            raise
        missing = exc
    replica = replica_of(request)
    local = request.app[LOCAL_NODE]
    if local.logs is not None and local.logs.has(ref):
        return {"id": ref, "node_name": replica.identity.name}
    with replica.read() as view:
        others: list[tuple[str, str | None]] = [
            (n, None) for n in view.servers if n != replica.identity.name
        ]
        others += [(n["name"], n["id"]) for n in worker_nodes(view) if n.get("status") == "ready"]

    async def probe(name: str, node_id: str | None) -> dict[str, Any] | None:
        try:
            loc = locate(request, name, node_id)
            await agent_get(
                request, loc, f"/v1/agent/logs/{ref}", {"lines": "0", "exists": "true"}, timeout=3.0
            )
            return {"id": ref, "node_name": name, "node": node_id}
        except NodeUnreachable:
            return None

    for found in await asyncio.gather(*(probe(*other) for other in others)):
        if found is not None:
            return found
    raise missing


def _unreachable(alloc_id: str, exc: Exception) -> ApiError:
    return ApiError(503, "node_unreachable", f"logs of allocation {alloc_id}: {exc}")


@routes.get("/v1/logs/{alloc}")
async def get_alloc_logs(request: web.Request) -> web.StreamResponse:
    await read_view(request)
    alloc = await find_alloc(request, request.match_info["alloc"])
    if flag(request, "stream"):
        return await _stream(request, [alloc], None, filters(request, DEFAULT_STREAM_LINES))
    try:
        lines = await tail_of(request, alloc, filters(request, DEFAULT_LINES))
    except NodeUnreachable as exc:
        raise _unreachable(alloc["id"], exc) from None
    return json_response(lines)


def _job_allocs(request: web.Request, job: str) -> list[dict[str, Any]]:
    with replica_of(request).read() as view:
        if job not in view.jobs and not view.allocs.by_job(job):
            raise ApiError(404, "job_not_found", f"job '{job}' does not exist")
        return list(view.allocs.by_job(job))


def _live(alloc: dict[str, Any]) -> bool:
    return alloc.get("desired_status") == "run" or alloc.get("status") in LIVE_STATUSES


@routes.get("/v1/logs")
async def get_logs(request: web.Request) -> web.StreamResponse:
    await read_view(request)
    job = request.query.get("job")
    alloc_ref = request.query.get("alloc")
    if alloc_ref:
        allocs = [await find_alloc(request, alloc_ref)]
        job = None
    elif job:
        allocs = _job_allocs(request, job)
    else:
        raise ApiError(400, "missing_parameter", "say whose logs: ?job=NAME or ?alloc=ID")
    if flag(request, "stream"):
        initial = [a for a in allocs if _live(a)] if job else allocs
        return await _stream(request, initial, job, filters(request, DEFAULT_STREAM_LINES))
    f = filters(request, DEFAULT_LINES)
    newest = sorted(allocs, key=lambda a: a.get("create_index") or 0)[-MAX_JOB_ALLOCS:]
    results = await asyncio.gather(
        *(tail_of(request, a, f) for a in newest), return_exceptions=True
    )
    merged: list[dict[str, Any]] = []
    missing: list[str] = []
    for alloc, result in zip(newest, results, strict=True):
        if isinstance(result, NodeUnreachable):
            missing.append(alloc["id"])
            continue
        if isinstance(result, BaseException):
            raise result
        merged.extend(result)
    if missing and len(missing) == len(newest):
        raise ApiError(
            503, "node_unreachable", f"no node holding logs of job '{job}' could be reached"
        )
    merged.sort(key=lambda d: d.get("us", 0))
    if f.lines is not None:
        merged = merged[-f.lines :] if f.lines else []
    headers = {"X-HeroCtl-Logs-Unavailable": ",".join(missing)} if missing else None
    return json_response(merged, headers=headers)


# --- public: streams ------------------------------------------------------------------------------


def _us_of(doc: str) -> int:
    """The ``us`` of a line as the agent endpoint writes it (``us`` comes
    before the free text ``line``), without decoding the whole JSON."""
    at = doc.index('"us":') + 5
    end = doc.index(",", at)
    return int(doc[at:end])


def _frames(event: str, docs: list[str]) -> bytes:
    return "".join(f"event: {event}\ndata: {d}\n\n" for d in docs).encode()


class _Stream:
    """One SSE response fed by a follower per allocation."""

    def __init__(
        self, request: web.Request, f: Filters, started_us: int, resume: int | None = None
    ) -> None:
        self.request = request
        self.f = f
        self.started_us = started_us
        self.resume = resume  # ?since=: a client resuming after the last line it got
        self.out: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_FRAMES)
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def add(self, alloc: dict[str, Any], *, from_start: bool) -> None:
        alloc_id = alloc["id"]
        if alloc_id in self.tasks:
            return
        follower = self._follow(alloc, self.started_us if from_start else self.resume)
        self.tasks[alloc_id] = asyncio.create_task(follower, name=f"logs-{alloc_id[:8]}")

    async def put_lines(self, docs: list[str]) -> None:
        if docs:
            await self.out.put(_frames("log", docs))

    async def put_event(self, event: str, doc: dict[str, Any]) -> None:
        await self.out.put(_frames(event, [json_text(doc)]))

    async def _follow(self, alloc: dict[str, Any], since: int | None) -> None:
        """Follow one allocation until the stream ends. After a failure it
        resumes after the last line delivered: from a microsecond before it,
        skipping the lines of that very microsecond already delivered (a
        burst of lines often shares one), so no line is lost nor repeated."""
        alloc_id = alloc["id"]
        lines = self.f.lines if since is None else MAX_LINES
        last_us, last_n = 0, 0  # the last line delivered, how many at that µs
        failures = 0
        reported = ""
        while True:
            skip_us, skip_n, skipped = last_us, last_n, 0
            try:
                loc = locate(self.request, alloc.get("node_name"), alloc.get("node"))
                follow = self._follow_local if loc.local else self._follow_remote
                async for batch in follow(loc, alloc_id, lines, since):
                    docs = []
                    for us, doc in batch:
                        if skip_us:
                            if us < skip_us:
                                continue
                            if us == skip_us and skipped < skip_n:
                                skipped += 1
                                continue
                            skip_us = 0
                        if us == last_us:
                            last_n += 1
                        else:
                            last_us, last_n = us, 1
                        docs.append(doc)
                    await self.put_lines(docs)
                    failures = 0
            except NodeUnreachable as exc:
                failures += 1
                if str(exc) != reported:
                    reported = str(exc)
                    await self.put_event("error", {"alloc": alloc_id, "message": str(exc)})
            lines = MAX_LINES  # a resume: everything after `since`
            if last_us:
                since = last_us - 1
            elif since is None:
                since = self.started_us
            await asyncio.sleep(min(RETRY_MAX, RETRY_MIN * 2 ** min(failures, 4)))

    async def _follow_local(
        self, loc: Location, alloc_id: str, lines: int | None, since: int | None
    ) -> AsyncIterator[list[tuple[int, str]]]:
        """Batches of (µs, JSON line) from this server's own store."""
        store = self.request.app[LOCAL_NODE].logs
        assert store is not None
        loop = asyncio.get_running_loop()
        sub: LogSubscription | None = None
        try:
            backlog, sub = await loop.run_in_executor(
                None,
                lambda: store.subscribe(
                    alloc_id, loop, lines=lines, stream=self.f.stream, task=self.f.task, since=since
                ),
            )
            batch = backlog
            dropped = 0
            while True:
                if batch:
                    yield [(ln.us, json_text(ln.to_dict(alloc_id))) for ln in batch]
                if sub.dropped != dropped:
                    await self.put_event(
                        "dropped", {"alloc": alloc_id, "lines": sub.dropped - dropped}
                    )
                    dropped = sub.dropped
                batch = await sub.get()
        finally:
            if sub is not None:
                sub.close()

    async def _follow_remote(
        self, loc: Location, alloc_id: str, lines: int | None, since: int | None
    ) -> AsyncIterator[list[tuple[int, str]]]:
        """Batches of (µs, JSON line) relayed from the node's server."""
        assert loc.url is not None
        session = self.request.app[RELAY_SESSION]
        url = f"{loc.url}/v1/agent/logs/{quote(alloc_id, safe='')}"
        params = Filters(lines, self.f.stream, self.f.task).params(since, follow=True)
        try:
            async with session.get(
                url,
                params=params,
                headers=agent_headers(self.request, loc),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=KEEPALIVE * 6),
            ) as r:
                if r.status != 200:
                    text = (await r.read()).decode(errors="replace")[:300]
                    raise NodeUnreachable(f"node '{loc.node_name}' answered {r.status}: {text}")
                rest = b""
                async for chunk in r.content.iter_any():
                    *complete, rest = (rest + chunk).split(b"\n")
                    batch: list[tuple[int, str]] = []
                    for raw in complete:
                        if not raw.strip():
                            continue  # keep-alive
                        doc = raw.decode()
                        if doc.startswith('{"dropped"'):
                            n = json.loads(doc).get("dropped", 0)
                            await self.put_event("dropped", {"alloc": alloc_id, "lines": n})
                            continue
                        batch.append((_us_of(doc), doc))
                    if batch:
                        yield batch
            raise NodeUnreachable(f"node '{loc.node_name}' ended the stream")
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            raise NodeUnreachable(
                f"node '{loc.node_name}' at {loc.url}: {exc or type(exc).__name__}"
            ) from None

    async def close(self) -> None:
        tasks = list(self.tasks.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


async def _watch_job(stream: _Stream, job: str) -> None:
    """Add allocations of the job placed after the stream started."""
    replica = replica_of(stream.request)
    index = replica.table_index("allocations")
    while True:
        index = await replica.wait_for_change(("allocations",), index, 30.0)
        with replica.read() as view:
            allocs = list(view.allocs.by_job(job))
        for alloc in allocs:
            if alloc["id"] not in stream.tasks and _live(alloc):
                stream.add(alloc, from_start=True)


async def _stream(
    request: web.Request, allocs: list[dict[str, Any]], job: str | None, f: Filters
) -> web.StreamResponse:
    stream = _Stream(request, f, int(time.time() * 1e6), since_param(request))
    watcher: asyncio.Task[None] | None = None
    headers = {"X-HeroCtl-Index": str(replica_of(request).index)}
    async with sse_response(request, headers=headers, ping_interval=PING_INTERVAL) as sse:
        try:
            for alloc in allocs:
                stream.add(alloc, from_start=False)
            if job is not None:
                watcher = asyncio.create_task(_watch_job(stream, job), name="logs-watch")
            while sse.is_connected():
                try:
                    async with asyncio.timeout(KEEPALIVE):  # not wait_for: it may eat a cancel
                        first = await stream.out.get()
                except TimeoutError:
                    continue
                parts = [first]
                while not stream.out.empty() and len(parts) < 256:
                    parts.append(stream.out.get_nowait())
                await _write(sse, b"".join(parts))
        except (ConnectionResetError, RuntimeError, TimeoutError):
            pass  # the client went away
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watcher
            await stream.close()
    return sse


async def _write(sse: Any, data: bytes) -> None:
    async with asyncio.timeout(120):
        await sse.write(data)
