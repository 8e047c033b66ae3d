"""Metrics: a cluster snapshot, time series from the agents, Prometheus text.

Each agent samples its node and allocations and keeps the history
(:mod:`agent.metrics`); the server taking a request gathers from the agents
the same way logs are gathered (:mod:`api.routes_logs`: this server's own
store directly, the others' through their internal endpoints).

Public (policy: ``metrics``):

- ``GET /v1/metrics``: the snapshot: per node cpu/memory/disk used and
  total, allocations by status, per job running allocations, cpu and
  memory, the raft leader and index, API requests/s of every server, and
  ``ingress``: per host the nodes' nginx traffic added up (requests,
  responses by class, bytes, upstream p50/p99: the nodes' maximum; see
  :mod:`api.metrics_ingress`).
  ``?format=prometheus``: the same in the Prometheus text format.
- ``GET /v1/metrics/query?metric=cpu|memory|disk|memory_total|disk_total
  &job=|node=|alloc=&from=-1h&to=now&step=1m``: time series
  (``{"metric","unit","from","to","step","series":[{"node","alloc","job",
  "points":[[t, v], ...]}]}``), with a ``total`` series (the sum) for a
  job. ``from``/``to``: ``now``, ``-1h``/``-30m``/``-90s``/``-2d``, unix
  seconds or RFC 3339. Without job/node/alloc: every node's series.
  ``?metric=requests|responses_5xx|bytes_sent|bytes_received|upstream_p99_ms
  &host=<host>[&node=]``: an ingress host's history, one series per node
  (with ``host``) and a ``total`` (:mod:`api.metrics_ingress`).

The internal endpoints the agents serve are in :mod:`agent.http.endpoints`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from typing import Any

from aiohttp import web

from api.context import replica_of
from api.metrics_ingress import aggregate_ingress, checked_metric, gather_series, query_ingress
from api.metrics_prometheus import prometheus_text
from api.relay import Location, NodeUnreachable, agent_get, locate, worker_nodes
from api.routes_allocations import _alloc_or_404
from api.routes_nodes import find_node
from domain.metric_series import ALLOC_FIELDS, bucketize, choose_step
from httpkit import request_rate
from httpkit.errors import ApiError
from httpkit.local_node import LOCAL_NODE, current_doc
from httpkit.params import window
from httpkit.responses import json_response, rfc3339
from raft.fsm_allocs import CLIENT_STATUSES

routes = web.RouteTableDef()

UNITS = {
    "cpu": "percent",
    "memory": "MB",
    "memory_total": "MB",
    "disk": "MB",
    "disk_total": "MB",
}
GATHER_TIMEOUT = 3.0  # seconds a snapshot waits for another node


def setup(app: web.Application) -> None:
    request_rate.setup(app)


# --- gathering ---------------------------------------------------------------------------------


async def _current_of(
    request: web.Request, name: str, node_id: str | None = None
) -> dict[str, Any]:
    """The internal current-metrics answer of one node (this server's locally)."""
    if name == replica_of(request).identity.name:
        return current_doc(request.app, name)
    loc = locate(request, name, node_id)
    return await agent_get(request, loc, "/v1/agent/metrics/current", {}, GATHER_TIMEOUT)


async def gather_current(
    request: web.Request,
) -> tuple[dict[str, dict[str, Any] | None], dict[str, dict[str, Any] | None]]:
    """(server name -> its current metrics, worker-only node name -> its
    current metrics); None when it did not answer. Workers known to be down
    are not asked (their last sample is stale anyway)."""
    with replica_of(request).read() as view:
        servers = sorted(view.servers)
        workers: dict[str, str] = {}
        for n in worker_nodes(view):
            if n.get("status") == "ready":
                workers.setdefault(n["name"], n["id"])
    targets = [(name, None) for name in servers] + sorted(workers.items())
    results = await asyncio.gather(
        *(_current_of(request, name, nid) for name, nid in targets), return_exceptions=True
    )
    answers = {
        name: (r if isinstance(r, dict) else None)
        for (name, _), r in zip(targets, results, strict=True)
    }
    return {n: answers[n] for n in servers}, {n: answers[n] for n in workers}


def _pct_of(total: float, percent: float | None) -> float | None:
    return None if percent is None else round(total * percent / 100.0, 1)


async def snapshot(request: web.Request) -> dict[str, Any]:
    replica = replica_of(request)
    currents, worker_currents = await gather_current(request)
    with replica.read() as view:
        nodes = sorted(view.nodes.values(), key=lambda n: n.get("name", ""))
        allocs = list(view.allocs.values())
        index = view.index
    leader = replica.leader_server()
    samples: dict[str, dict[str, Any]] = {}  # node name -> sample
    alloc_usage: dict[str, dict[str, Any]] = {}
    for name, cur in [*currents.items(), *worker_currents.items()]:
        sample = (cur or {}).get("sample") or {}
        if sample:
            samples[name] = sample
            alloc_usage.update(sample.get("allocs") or {})
    by_status = Counter(a.get("status") for a in allocs)
    now = time.time()
    node_rows = []
    for n in nodes:
        res = n.get("resources") or {}
        sample = samples.get(n.get("name", ""))
        values = (sample or {}).get("node") or {}
        live = [
            a
            for a in allocs
            if a.get("node") == n["id"] and a.get("status") in ("pending", "running")
        ]
        cpu_pct = values.get("cpu") if values else None
        node_rows.append(
            {
                "id": n["id"],
                "name": n.get("name"),
                "status": n.get("status"),
                "cpu": {
                    "total_mhz": res.get("cpu", 0),
                    "used_percent": cpu_pct,
                    "used_mhz": _pct_of(res.get("cpu", 0), cpu_pct),
                },
                "memory": {
                    "total_mb": res.get("memory", 0),
                    "used_mb": values.get("memory") if values else None,
                    "host_total_mb": values.get("memory_total") if values else None,
                },
                "disk": {
                    "total_mb": values.get("disk_total") if values else res.get("disk", 0),
                    "used_mb": values.get("disk") if values else None,
                },
                "allocations": len(live),
                "sampled_at": rfc3339(sample["t"]) if sample and sample.get("t") else None,
                "sample_age_seconds": round(now - sample["t"], 1)
                if sample and sample.get("t")
                else None,
            }
        )
    jobs: dict[str, dict[str, Any]] = {}
    for a in allocs:
        row = jobs.setdefault(
            a.get("job", ""),
            {
                "name": a.get("job", ""),
                "running": 0,
                "allocations": 0,
                "cpu_percent": 0.0,
                "memory_mb": 0.0,
            },
        )
        row["allocations"] += 1
        if a.get("status") == "running":
            row["running"] += 1
            usage = alloc_usage.get(a["id"])
            if usage:
                row["cpu_percent"] = round(row["cpu_percent"] + float(usage.get("cpu") or 0), 2)
                row["memory_mb"] = round(row["memory_mb"] + float(usage.get("memory") or 0), 1)
    api_servers = {
        name: (cur or {}).get("api", {}).get("requests_per_second")
        for name, cur in currents.items()
    }
    ingress = aggregate_ingress(
        {
            name: (cur or {}).get("ingress")
            for name, cur in [*currents.items(), *worker_currents.items()]
        }
    )
    return {
        "time": rfc3339(now),
        "server": replica.identity.name,
        "raft": {
            "leader": leader.get("name") if leader else None,
            **replica.raft_status(),
            "index": index,
        },
        "api": {
            "requests_per_second": round(sum(v for v in api_servers.values() if v), 2),
            "servers": api_servers,
        },
        "nodes": node_rows,
        "allocations": {status: by_status.get(status, 0) for status in CLIENT_STATUSES},
        "jobs": sorted(jobs.values(), key=lambda j: j["name"]),
        "ingress": ingress,
        "unreachable_servers": sorted(k for k, v in currents.items() if v is None),
        "unreachable_nodes": sorted(k for k, v in worker_currents.items() if v is None),
    }


# --- public ------------------------------------------------------------------------------------


@routes.get("/v1/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "prometheus"):
        raise ApiError(400, "invalid_parameter", "format must be json or prometheus")
    snap = await snapshot(request)
    if fmt == "prometheus":
        body, content_type = prometheus_text(snap)
        return web.Response(body=body, headers={"Content-Type": content_type})
    return json_response(snap)


async def _node_query(
    request: web.Request, loc: Location, params: dict[str, str]
) -> dict[str, Any]:
    if loc.local:
        store = request.app[LOCAL_NODE].metrics
        if store is None:
            raise NodeUnreachable(f"node '{loc.node_name}' runs no agent")
        start, end = float(params["from"]), float(params["to"])
        step = float(params["step"]) if params.get("step") else None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None,
            lambda: store.query(
                params["metric"],
                alloc=params.get("alloc"),
                job=params.get("job"),
                host=params.get("host"),
                start=start,
                end=end,
                step=step,
            ),
        )
    return await agent_get(request, loc, "/v1/agent/metrics/query", params)


def _sum_series(series: list[dict[str, Any]], step: float) -> list[list[float]]:
    """One series: per ``step`` bucket, the sum of each series' average."""
    total: dict[float, float] = {}
    for s in series:
        points = [(float(t), (float(v),)) for t, v in s["points"]]
        for t, v in bucketize(points, 0, -math.inf, math.inf, step):
            total[t] = total.get(t, 0.0) + v
    return [[t, round(v, 3)] for t, v in sorted(total.items())]


@routes.get("/v1/metrics/query")
async def query_metrics(request: web.Request) -> web.Response:
    replica = replica_of(request)
    metric, host = checked_metric(request)
    start, end, step = window(request)
    if host is not None:  # an ingress metric (checked_metric: host goes with those only)
        return await query_ingress(request, metric, host, (start, end, step), _node_query)
    job = request.query.get("job") or None
    node_ref = request.query.get("node") or None
    alloc_ref = request.query.get("alloc") or None
    if sum(x is not None for x in (job, node_ref, alloc_ref)) > 1:
        raise ApiError(400, "invalid_parameter", "give at most one of job, node and alloc")
    params = {"metric": metric, "from": repr(start), "to": repr(end)}
    if step is not None:
        params["step"] = repr(step)
    targets: list[tuple[str, str | None]] = []  # (name, id) of the nodes to ask
    if alloc_ref is not None:
        alloc = _alloc_or_404(request, alloc_ref)
        params["alloc"] = alloc["id"]
        targets = [(alloc.get("node_name") or "", alloc.get("node"))]
        if metric not in ALLOC_FIELDS:
            raise ApiError(
                400, "invalid_parameter", f"an allocation has {', '.join(ALLOC_FIELDS)} only"
            )
    elif job is not None:
        params["job"] = job
        with replica.read() as view:
            placed = {(a.get("node_name"), a.get("node")) for a in view.allocs.by_job(job)}
            if job not in view.jobs and not placed:
                raise ApiError(404, "job_not_found", f"job '{job}' does not exist")
        targets = sorted(((n, i) for n, i in placed if n), key=lambda t: (t[0], t[1] or ""))
        if metric not in ALLOC_FIELDS:
            raise ApiError(400, "invalid_parameter", f"a job has {', '.join(ALLOC_FIELDS)} only")
    else:
        with replica.read() as view:
            if node_ref is not None:
                node = find_node(view, node_ref)
                if node is None:
                    raise ApiError(404, "node_not_found", f"node '{node_ref}' does not exist")
                targets = [(node.get("name", ""), node["id"])]
            else:
                targets = sorted((n.get("name", ""), n["id"]) for n in view.nodes.values())

    found, errors, steps = await gather_series(request, targets, params, _node_query)
    series = []
    for name, s in found:
        labels = s.get("labels") or {}
        series.append(
            {
                "node": name,
                "alloc": labels.get("alloc"),
                "job": labels.get("job"),
                "group": labels.get("group"),
                "points": s.get("points") or [],
            }
        )
    answer_step = max(steps) if steps else choose_step(start, end, 10.0, step)
    out: dict[str, Any] = {
        "metric": metric,
        "unit": UNITS.get(metric, ""),
        "scope": "alloc" if alloc_ref else "job" if job else "node",
        "from": start,
        "to": end,
        "step": answer_step,
        "series": series,
        "errors": errors,
    }
    if job is not None or (node_ref is None and alloc_ref is None):
        out["total"] = {"points": _sum_series(series, answer_step)}
    return json_response(out)
