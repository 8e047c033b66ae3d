"""The internal agent endpoints: one node's log and metrics stores over HTTP.

Served by every server with an embedded agent (in its API, to the other
servers' ``hs_`` credential) and by a worker-only node's agent on its own
listener (:mod:`agent.http.worker_app`, to the ``hn_`` credential the servers make
from that node's secret): the same handlers in both, fed by the app's
:class:`LocalNode`. No policy grants ``/v1/agent``: only servers get in.

- ``GET /v1/agent/logs/:alloc?lines=&type=&task=&since=&follow=true&exists=true``:
  the last lines (a JSON list); with ``follow`` an NDJSON stream of every new
  line (a blank line every few seconds keeps it alive, ``{"dropped": N}``
  says a slow reader lost lines); ``exists``: 404 when there is no log here.
- ``GET /v1/agent/metrics/current``: the node's last sample, its ingress
  per host (and, on a server, its API request rate).
- ``GET /v1/agent/metrics/query?metric=&alloc=|job=|host=&from=&to=&step=``:
  the node's history (``host``: an ingress host's, for the ingress metrics).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from domain.metric_series import metric_problem
from httpkit.errors import ApiError
from httpkit.identity import identity_of
from httpkit.local_node import KEEPALIVE, LOCAL_NODE, LogLineLike, LogSource, current_doc
from httpkit.params import DEFAULT_LINES, filters, flag, since_param, window
from httpkit.responses import json_response, json_text

routes = web.RouteTableDef()


def require_server(request: web.Request) -> None:
    """The agent endpoints answer the cluster's servers only."""
    if identity_of(request).kind != "server":
        raise ApiError(403, "forbidden", "the agent endpoints are for the cluster's servers")


def _no_agent() -> ApiError:
    return ApiError(404, "agent_not_running", "this server runs no agent (--no-agent)")


def _local_store(request: web.Request) -> LogSource:
    require_server(request)
    store = request.app[LOCAL_NODE].logs
    if store is None:
        raise _no_agent()
    return store


def _ndjson(alloc_id: str, lines: list[LogLineLike]) -> bytes:
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
    metric = request.query.get("metric", "")
    host = request.query.get("host")
    problem = metric_problem(metric, host)
    if problem is not None:
        raise ApiError(400, "invalid_parameter", problem)
    start, end, step = window(request)
    loop = asyncio.get_running_loop()
    answer = await loop.run_in_executor(
        None,
        lambda: store.query(
            metric,
            alloc=request.query.get("alloc") or None,
            job=request.query.get("job") or None,
            host=host,
            start=start,
            end=end,
            step=step,
        ),
    )
    return json_response(answer)
