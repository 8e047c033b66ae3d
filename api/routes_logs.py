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
import logging
import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from api.context import REPLICA, read_view, replica_of
from api.log_stream import is_live, stream_logs
from api.relay import (
    NodeUnreachable,
    agent_get,
    locate,
    relay_session_ctx,
    worker_nodes,
)
from api.routes_allocations import _alloc_or_404
from httpkit.errors import ApiError
from httpkit.local_node import LOCAL_NODE, LocalNode
from httpkit.params import (
    DEFAULT_LINES,
    DEFAULT_STREAM_LINES,
    Filters,
    filters,
    flag,
)
from httpkit.responses import json_response

routes = web.RouteTableDef()
log = logging.getLogger("heroctld.logs")

MAX_JOB_ALLOCS = 200  # allocations a job's (non-stream) tail reads, newest first


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
        if exc.status != 404 or not _FULL_ID.fullmatch(ref):
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
        return await stream_logs(request, [alloc], None, filters(request, DEFAULT_STREAM_LINES))
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
        initial = [a for a in allocs if is_live(a)] if job else allocs
        return await stream_logs(request, initial, job, filters(request, DEFAULT_STREAM_LINES))
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
        whose = f"job '{job}'" if job else f"allocation {missing[0]}"  # ?alloc=: no job
        raise ApiError(503, "node_unreachable", f"no node holding logs of {whose} could be reached")
    merged.sort(key=lambda d: d.get("us", 0))
    if f.lines is not None:
        merged = merged[-f.lines :] if f.lines else []
    headers = {"X-HeroCtl-Logs-Unavailable": ",".join(missing)} if missing else None
    return json_response(merged, headers=headers)
