"""The internal agent endpoints: one node's log and metrics stores over HTTP.

Served by every server with an embedded agent (in its API, to the other
servers' ``hs_`` credential) and by a worker-only node's agent on its own
listener (:mod:`api.worker_app`, to the ``hn_`` credential the servers make
from that node's secret): the same handlers in both, fed by the app's
:class:`LocalNode`. No policy grants ``/v1/agent``: only servers get in.

- ``GET /v1/agent/logs/:alloc?lines=&type=&task=&since=&follow=true&exists=true``:
  the last lines (a JSON list); with ``follow`` an NDJSON stream of every new
  line (a blank line every few seconds keeps it alive, ``{"dropped": N}``
  says a slow reader lost lines); ``exists``: 404 when there is no log here.
- ``GET /v1/agent/metrics/current``: the node's last sample (and, on a
  server, its API request rate).
- ``GET /v1/agent/metrics/query?metric=&alloc=|job=&from=&to=&step=``: the
  node's history.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from agent.logs import LogLine, LogStore
from agent.metrics import MetricsStore
from api.errors import ApiError
from api.params import DEFAULT_LINES, filters, flag, metric_param, since_param, window
from api.request_rate import REQUESTS
from api.responses import json_response, json_text
from api.security.runtime import identity_of

routes = web.RouteTableDef()

KEEPALIVE = 5.0  # seconds between keep-alive lines of an idle follow


@dataclass
class LocalNode:
    """This process's own agent (none on a server with ``--no-agent``): its
    stores and who it is, set by the daemon once the agent exists."""

    logs: LogStore | None = None
    metrics: MetricsStore | None = None
    node_id: str | None = None
    name: str | None = None


LOCAL_NODE = web.AppKey("local_node", LocalNode)


def require_server(request: web.Request) -> None:
    """The agent endpoints answer the cluster's servers only."""
    if identity_of(request).kind != "server":
        raise ApiError(403, "forbidden", "the agent endpoints are for the cluster's servers")


def _no_agent() -> ApiError:
    return ApiError(404, "agent_not_running", "this server runs no agent (--no-agent)")


def _local_store(request: web.Request) -> LogStore:
    require_server(request)
    store = request.app[LOCAL_NODE].logs
    if store is None:
        raise _no_agent()
    return store


def _ndjson(alloc_id: str, lines: list[LogLine]) -> bytes:
    return "".join(json_text(ln.to_dict(alloc_id)) + "\n" for ln in lines).encode()


@routes.get("/v1/agent/logs/{alloc}")
async def agent_logs(request: web.Request) -> web.StreamResponse:
    store = _local_store(request)
    alloc_id = request.match_info["alloc"]
    f = filters(request, DEFAULT_LINES)
    since = since_param(request)
    loop = asyncio.get_running_loop()
    try:
        if not flag(request, "follow"):
            if flag(request, "exists") and not store.has(alloc_id):
                raise ApiError(404, "logs_not_found", f"no logs of allocation {alloc_id} here")
            found = await loop.run_in_executor(
                None,
                lambda: store.tail(alloc_id, f.lines, stream=f.stream, task=f.task, since=since),
            )
            return json_response([ln.to_dict(alloc_id) for ln in found])
        backlog, sub = await loop.run_in_executor(
            None,
            lambda: store.subscribe(
                alloc_id, loop, lines=f.lines, stream=f.stream, task=f.task, since=since
            ),
        )
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from None
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    try:
        await response.prepare(request)
        if backlog:
            await response.write(_ndjson(alloc_id, backlog))
        dropped = 0
        while True:
            batch = await sub.get(timeout=KEEPALIVE)
            if sub.dropped != dropped:
                await response.write(
                    (json_text({"dropped": sub.dropped - dropped}) + "\n").encode()
                )
                dropped = sub.dropped
            await response.write(_ndjson(alloc_id, batch) if batch else b"\n")
    except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
        pass  # the other server went away
    finally:
        sub.close()
    return response


def current_doc(app: web.Application, name: str) -> dict[str, Any]:
    """This node's last sample; on a server (which counts its API
    requests) also its request rate."""
    local = app[LOCAL_NODE]
    doc: dict[str, Any] = {
        "server": name,
        "node_id": local.node_id,
        "sample": local.metrics.current() if local.metrics is not None else {},
        "interval": local.metrics.interval if local.metrics is not None else None,
    }
    if REQUESTS in app:
        counter = app[REQUESTS]
        doc["api"] = {"requests_per_second": counter.rate(), "requests_total": counter.total}
    return doc


@routes.get("/v1/agent/metrics/current")
async def agent_current(request: web.Request) -> web.Response:
    require_server(request)
    local = request.app[LOCAL_NODE]
    return json_response(current_doc(request.app, local.name or ""))


@routes.get("/v1/agent/metrics/query")
async def agent_query(request: web.Request) -> web.Response:
    require_server(request)
    store = request.app[LOCAL_NODE].metrics
    if store is None:
        raise _no_agent()
    metric = metric_param(request)
    start, end, step = window(request)
    loop = asyncio.get_running_loop()
    answer = await loop.run_in_executor(
        None,
        lambda: store.query(
            metric,
            alloc=request.query.get("alloc") or None,
            job=request.query.get("job") or None,
            start=start,
            end=end,
            step=step,
        ),
    )
    return json_response(answer)
