"""The live SSE stream of logs (`?stream=true` on /v1/logs, see api.routes_logs).

One follower task per allocation reads its node's log endpoint (or this
server's own store) and renders batches into one queue; the response writes
them as SSE frames. A job stream also watches the job's allocations and
follows the ones placed after it started, from their first line. A node that
cannot be reached is retried, resuming after the last line it sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web
from aiohttp_sse import sse_response

from api.context import SSE_PING_INTERVAL, replica_of
from api.relay import RELAY_SESSION, Location, NodeUnreachable, agent_headers, locate
from api.security.readmit import still_admitted
from httpkit.local_node import KEEPALIVE, LOCAL_NODE, LogSubscription
from httpkit.params import MAX_LINES, Filters, since_param
from httpkit.responses import json_text

log = logging.getLogger("heroctld.logs")

RETRY_MIN, RETRY_MAX = 0.5, 5.0  # seconds between tries to reach a node again
QUEUE_FRAMES = 1024  # rendered batches waiting for a slow SSE client
LIVE_STATUSES = ("pending", "running")


def is_live(alloc: dict[str, Any]) -> bool:
    return alloc.get("desired_status") == "run" or alloc.get("status") in LIVE_STATUSES


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
            if alloc["id"] not in stream.tasks and is_live(alloc):
                stream.add(alloc, from_start=True)


async def stream_logs(
    request: web.Request, allocs: list[dict[str, Any]], job: str | None, f: Filters
) -> web.StreamResponse:
    stream = _Stream(request, f, int(time.time() * 1e6), since_param(request))
    watcher: asyncio.Task[None] | None = None
    headers = {"X-HeroCtl-Index": str(replica_of(request).index)}
    async with sse_response(request, headers=headers, ping_interval=SSE_PING_INTERVAL) as sse:
        try:
            for alloc in allocs:
                stream.add(alloc, from_start=False)
            if job is not None:
                watcher = asyncio.create_task(_watch_job(stream, job), name="logs-watch")
            while sse.is_connected():
                if not still_admitted(request):  # revoked, logged out, expired
                    await _write(sse, b": the credential is no longer valid\n\n")
                    break
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
