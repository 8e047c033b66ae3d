"""Ingress metrics across the cluster: every node's nginx, per host.

Each node's agent reads its own access log (:mod:`agent.ingress.access_log`)
and keeps the figures with its other metrics (:mod:`agent.metrics`); the
server answering gathers them like the rest of ``/v1/metrics``:

- the snapshot's ``ingress``: per host, the nodes' figures added up
  (:func:`aggregate_ingress`). The counters (``requests``, ``responses``,
  ``bytes_sent``, ``bytes_received``) are cumulative since each node's
  reader started (its agent's start), so a node restarting makes the sum
  drop; ``requests_per_second`` is the last sampling interval's. Percentiles
  do not add: ``upstream_p50_ms`` and ``upstream_p99_ms`` are the **maximum**
  of the nodes' (over each reader's window, a minute by default), an upper
  bound of the cluster-wide percentile (at most 1 % of any node's requests
  are slower than its p99, so at most 1 % of all of them are slower than the
  largest p99). ``nodes`` has each node's own figures, by node name;
- ``GET /v1/metrics/query?metric=<ingress metric>&host=<host>[&node=]``:
  one series per node that served the host, and a ``total`` (the sum for
  the rates, the maximum for the latency; none when ``node`` is given, as
  for the other metrics). The ingress metrics
  (:data:`domain.metric_series.INGRESS_FIELDS`) are per second over the
  sampling interval, ``upstream_p99_ms`` in ms. ``host`` is required with
  them and refused with any other metric, ``job`` and ``alloc`` refused
  with them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from api.context import replica_of
from api.relay import Location, NodeUnreachable, locate
from api.routes_nodes import find_node
from domain.metric_series import (
    INGRESS_MAX_FIELDS,
    bucketize,
    choose_step,
    metric_problem,
)
from httpkit.errors import ApiError
from httpkit.responses import json_response

__all__ = ["INGRESS_UNITS", "aggregate_ingress", "checked_metric", "query_ingress"]

INGRESS_UNITS = {
    "requests": "requests/s",
    "responses_5xx": "responses/s",
    "bytes_sent": "bytes/s",
    "bytes_received": "bytes/s",
    "upstream_p99_ms": "ms",
}
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
COUNTERS = ("requests", "bytes_sent", "bytes_received")
LATENCIES = ("upstream_p50_ms", "upstream_p99_ms")

NodeQuery = Callable[[web.Request, Location, dict[str, str]], Awaitable[dict[str, Any]]]


# --- the snapshot --------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A figure from an agent's answer; None for anything that is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _node_figures(stats: Mapping[str, Any]) -> dict[str, Any]:
    """One node's line for one host, with only the keys we know, checked."""
    responses = stats.get("responses") if isinstance(stats.get("responses"), Mapping) else {}
    rps = _number(stats.get("requests_per_second"))
    return {
        **{c: int(_number(stats.get(c)) or 0) for c in COUNTERS},
        "requests_per_second": rps,
        "responses": {c: int(_number(responses.get(c)) or 0) for c in CLASSES},
        **{q: _number(stats.get(q)) for q in LATENCIES},
    }


def aggregate_ingress(
    per_node: Mapping[str, Mapping[str, Mapping[str, Any]] | None],
) -> dict[str, dict[str, Any]]:
    """``{host: {"requests", "requests_per_second", "responses": {"1xx".."5xx"},
    "bytes_sent", "bytes_received", "upstream_p50_ms", "upstream_p99_ms",
    "nodes": {node: the same, for that node}}}`` from each node's ``ingress``
    (None or missing: that node did not answer or runs no ingress). Counters
    and rates summed, latencies the maximum (see the module doc)."""
    out: dict[str, dict[str, Any]] = {}
    for node in sorted(per_node):
        hosts = per_node[node]
        if not isinstance(hosts, Mapping):
            continue
        for host in sorted(hosts):
            stats = hosts[host]
            if not isinstance(stats, Mapping):
                continue
            mine = _node_figures(stats)
            row = out.setdefault(
                str(host),
                {
                    **dict.fromkeys(COUNTERS, 0),
                    "requests_per_second": None,
                    "responses": dict.fromkeys(CLASSES, 0),
                    **dict.fromkeys(LATENCIES),
                    "nodes": {},
                },
            )
            for c in COUNTERS:
                row[c] += mine[c]
            for c in CLASSES:
                row["responses"][c] += mine["responses"][c]
            if mine["requests_per_second"] is not None:
                row["requests_per_second"] = round(
                    (row["requests_per_second"] or 0.0) + mine["requests_per_second"], 3
                )
            for q in LATENCIES:
                if mine[q] is not None and (row[q] is None or mine[q] > row[q]):
                    row[q] = mine[q]
            row["nodes"][node] = mine
    return out


# --- the history ---------------------------------------------------------------------------------


def checked_metric(request: web.Request) -> tuple[str, str | None]:
    """(metric, host lowercased or None) of a query, or the contract's 400."""
    metric = request.query.get("metric", "")
    host = request.query.get("host")
    if host is not None:
        host = host.strip().lower()
    problem = metric_problem(metric, host)
    if problem is not None:
        raise ApiError(400, "invalid_parameter", problem)
    return metric, host


def total_series(metric: str, series: list[dict[str, Any]], step: float) -> list[list[float]]:
    """One series: per ``step`` bucket, the sum of each node's average (the
    maximum for a latency)."""
    total: dict[float, float] = {}
    highest = metric in INGRESS_MAX_FIELDS
    for s in series:
        points = [(float(t), (float(v),)) for t, v in s["points"]]
        for t, v in bucketize(points, 0, -math.inf, math.inf, step):
            if t not in total:
                total[t] = v
            else:
                total[t] = max(total[t], v) if highest else total[t] + v
    return [[t, round(v, 3)] for t, v in sorted(total.items())]


async def gather_series(
    request: web.Request,
    targets: list[tuple[str, Any]],
    params: dict[str, str],
    node_query: NodeQuery,
) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, str]], list[float]]:
    """Ask every target node (name, id) at once: the (node name, series) they
    hold, the nodes that did not answer, and the steps they answered with."""

    async def ask(name: str, node_id: Any) -> dict[str, Any]:
        return await node_query(request, locate(request, name, node_id), params)

    results = await asyncio.gather(*(ask(*t) for t in targets), return_exceptions=True)
    found: list[tuple[str, dict[str, Any]]] = []
    errors: list[dict[str, str]] = []
    steps: list[float] = []
    for (name, _), result in zip(targets, results, strict=True):
        if isinstance(result, NodeUnreachable):
            errors.append({"node": name, "message": str(result)})
            continue
        if isinstance(result, BaseException):
            raise result
        steps.append(float(result.get("step") or 0))
        found += [(name, s) for s in result.get("series") or []]
    return found, errors, steps


async def query_ingress(
    request: web.Request,
    metric: str,
    host: str,
    window: tuple[float, float, float | None],
    node_query: NodeQuery,
) -> web.Response:
    """``/v1/metrics/query`` for an ingress metric of ``host``: every node's
    series (or ``node``'s), asked with ``node_query`` (this server's store
    directly, the others' agents over HTTP), and their total."""
    if request.query.get("job") or request.query.get("alloc"):
        raise ApiError(
            400, "invalid_parameter", "an ingress metric takes host (and node), not job or alloc"
        )
    start, end, step = window
    node_ref = request.query.get("node") or None
    with replica_of(request).read() as view:
        if node_ref is not None:
            node = find_node(view, node_ref)
            if node is None:
                raise ApiError(404, "node_not_found", f"node '{node_ref}' does not exist")
            targets = [(node.get("name", ""), node["id"])]
        else:
            targets = sorted((n.get("name", ""), n["id"]) for n in view.nodes.values())
    params = {"metric": metric, "host": host, "from": repr(start), "to": repr(end)}
    if step is not None:
        params["step"] = repr(step)

    found, errors, steps = await gather_series(request, targets, params, node_query)
    series = [
        {
            "node": name,
            "host": (s.get("labels") or {}).get("host", host),
            "alloc": None,
            "job": None,
            "group": None,
            "points": s.get("points") or [],
        }
        for name, s in found
    ]
    answer_step = max(steps) if steps else choose_step(start, end, 10.0, step)
    out: dict[str, Any] = {
        "metric": metric,
        "unit": INGRESS_UNITS.get(metric, ""),
        "scope": "host",
        "host": host,
        "from": start,
        "to": end,
        "step": answer_step,
        "series": series,
        "errors": errors,
    }
    if node_ref is None:
        out["total"] = {"points": total_series(metric, series, answer_step)}
    return json_response(out)
