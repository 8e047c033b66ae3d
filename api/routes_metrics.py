"""Metrics: a cluster snapshot, time series from the agents, Prometheus text.

Each agent samples its node and allocations and keeps the history
(:mod:`agent.metrics`); the server taking a request gathers from the agents
the same way logs are gathered (:mod:`api.routes_logs`: this server's own
store directly, the others' through their internal endpoints).

Public (policy: ``metrics``):

- ``GET /v1/metrics``: the snapshot: per node cpu/memory/disk used and
  total, allocations by status, per job running allocations, cpu and
  memory, the raft leader and index, API requests/s of every server.
  ``?format=prometheus``: the same in the Prometheus text format.
- ``GET /v1/metrics/query?metric=cpu|memory|disk|memory_total|disk_total
  &job=|node=|alloc=&from=-1h&to=now&step=1m``: time series
  (``{"metric","unit","from","to","step","series":[{"node","alloc","job",
  "points":[[t, v], ...]}]}``), with a ``total`` series (the sum) for a
  job. ``from``/``to``: ``now``, ``-1h``/``-30m``/``-90s``/``-2d``, unix
  seconds or RFC 3339. Without job/node/alloc: every node's series.

Internal (servers only): ``GET /v1/agent/metrics/current`` (this node's
last sample and this server's API rate) and ``GET /v1/agent/metrics/query``.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import Counter, deque
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from agent.metrics import ALLOC_FIELDS, NODE_FIELDS, bucketize, choose_step
from api.context import replica_of
from api.errors import ApiError, Handler
from api.routes_allocations import _alloc_or_404
from api.routes_logs import (
    LOCAL_NODE,
    Location,
    NodeUnreachable,
    agent_get,
    locate,
    require_server,
)
from api.routes_nodes import find_node
from api.security.runtime import rfc3339
from raft.fsm_allocs import CLIENT_STATUSES

routes = web.RouteTableDef()

METRICS = sorted(set(NODE_FIELDS) | set(ALLOC_FIELDS))
UNITS = {
    "cpu": "percent",
    "memory": "MB",
    "memory_total": "MB",
    "disk": "MB",
    "disk_total": "MB",
}
GATHER_TIMEOUT = 3.0  # seconds a snapshot waits for another server
MAX_RANGE = 31 * 86400.0


class RequestCounter:
    """API requests per second of this server, over the last minute."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.total = 0
        self._seconds: deque[list[int]] = deque()  # [second, count]

    def hit(self) -> None:
        self.total += 1
        sec = int(self.clock())
        if self._seconds and self._seconds[-1][0] == sec:
            self._seconds[-1][1] += 1
            return
        self._seconds.append([sec, 1])
        while self._seconds and self._seconds[0][0] <= sec - 60:
            self._seconds.popleft()

    def rate(self, window: int = 10) -> float:
        """Requests/s over the last ``window`` whole seconds."""
        now = int(self.clock())
        count = sum(c for s, c in self._seconds if now - window <= s < now)
        return round(count / window, 2)


REQUESTS = web.AppKey("request_counter", RequestCounter)


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/v1/agent/"):  # servers talking among themselves
        request.app[REQUESTS].hit()
    return await handler(request)


def setup(app: web.Application) -> None:
    app[REQUESTS] = RequestCounter()
    app.middlewares.insert(0, count_requests)


# --- parameters -------------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, None: 1}


def parse_duration(value: str, name: str) -> float:
    m = _DURATION.match(value.strip())
    if not m:
        raise ApiError(400, "invalid_parameter", f"{name} must look like 30s, 5m, 1h or 2d")
    return float(m.group(1)) * _UNIT[m.group(2)]


def parse_time(value: str | None, now: float, name: str, default: float) -> float:
    """``now``, ``-1h`` (before now), unix seconds or RFC 3339 -> unix seconds."""
    if value is None or value == "":
        return default
    value = value.strip()
    if value == "now":
        return now
    if value.startswith("-"):
        return now - parse_duration(value[1:], name)
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ApiError(
            400, "invalid_parameter", f"{name} must be now, -1h, unix seconds or RFC 3339"
        ) from None


def _window(request: web.Request) -> tuple[float, float, float | None]:
    now = time.time()
    end = parse_time(request.query.get("to"), now, "to", now)
    start = parse_time(request.query.get("from"), now, "from", end - 3600)
    if start >= end:
        raise ApiError(400, "invalid_parameter", "from must be before to")
    if end - start > MAX_RANGE:
        start = end - MAX_RANGE
    raw_step = request.query.get("step")
    step = parse_duration(raw_step, "step") if raw_step else None
    if step is not None and step <= 0:
        raise ApiError(400, "invalid_parameter", "step must be positive")
    return start, end, step


# --- internal ----------------------------------------------------------------------------------


@routes.get("/v1/agent/metrics/current")
async def agent_current(request: web.Request) -> web.Response:
    require_server(request)
    local = request.app[LOCAL_NODE]
    current = local.metrics.current() if local.metrics is not None else {}
    counter = request.app[REQUESTS]
    return web.json_response(
        {
            "server": replica_of(request).identity.name,
            "node_id": local.node_id,
            "sample": current,
            "interval": local.metrics.interval if local.metrics is not None else None,
            "api": {"requests_per_second": counter.rate(), "requests_total": counter.total},
        }
    )


@routes.get("/v1/agent/metrics/query")
async def agent_query(request: web.Request) -> web.Response:
    require_server(request)
    store = request.app[LOCAL_NODE].metrics
    if store is None:
        raise ApiError(404, "agent_not_running", "this server runs no agent (--no-agent)")
    metric = _metric(request)
    start, end, step = _window(request)
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
    return web.json_response(answer)


def _metric(request: web.Request) -> str:
    metric = request.query.get("metric", "")
    if metric not in METRICS:
        raise ApiError(400, "invalid_parameter", f"metric must be one of {', '.join(METRICS)}")
    return metric


# --- gathering ---------------------------------------------------------------------------------


async def _current_of(request: web.Request, server: str) -> dict[str, Any]:
    """The internal current-metrics answer of one server (this one locally)."""
    if server == replica_of(request).identity.name:
        return await _local_current(request)
    loc = locate(request, server)
    return await agent_get(request, loc, "/v1/agent/metrics/current", {}, GATHER_TIMEOUT)


async def _local_current(request: web.Request) -> dict[str, Any]:
    local = request.app[LOCAL_NODE]
    counter = request.app[REQUESTS]
    return {
        "server": replica_of(request).identity.name,
        "node_id": local.node_id,
        "sample": local.metrics.current() if local.metrics is not None else {},
        "api": {"requests_per_second": counter.rate(), "requests_total": counter.total},
    }


async def gather_current(request: web.Request) -> dict[str, dict[str, Any] | None]:
    """server name -> its current metrics (None when it did not answer)."""
    with replica_of(request).state.read() as s:
        servers = sorted(s.table("servers"))
    results = await asyncio.gather(
        *(_current_of(request, name) for name in servers), return_exceptions=True
    )
    return {
        name: (r if isinstance(r, dict) else None) for name, r in zip(servers, results, strict=True)
    }


def _pct_of(total: float, percent: float | None) -> float | None:
    return None if percent is None else round(total * percent / 100.0, 1)


async def snapshot(request: web.Request) -> dict[str, Any]:
    replica = replica_of(request)
    currents = await gather_current(request)
    with replica.state.read() as s:
        nodes = sorted(s.table("nodes").values(), key=lambda n: n.get("name", ""))
        allocs = list(s.table("allocations").values())
        index = s.index
    leader = replica.leader_server()
    samples: dict[str, dict[str, Any]] = {}  # node name -> sample
    alloc_usage: dict[str, dict[str, Any]] = {}
    for name, cur in currents.items():
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
    return {
        "time": rfc3339(now),
        "server": replica.identity.name,
        "raft": {
            "leader": leader.get("name") if leader else None,
            "is_leader": replica.node.is_leader,
            "index": index,
            "term": replica.node.term,
            "commit_index": replica.node.commit_index,
            "applied_index": replica.node.applied_index,
        },
        "api": {
            "requests_per_second": round(sum(v for v in api_servers.values() if v), 2),
            "servers": api_servers,
        },
        "nodes": node_rows,
        "allocations": {status: by_status.get(status, 0) for status in CLIENT_STATUSES},
        "jobs": sorted(jobs.values(), key=lambda j: j["name"]),
        "unreachable_servers": sorted(k for k, v in currents.items() if v is None),
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
    return web.json_response(snap)


class _SnapshotCollector:
    """prometheus-client collector over one snapshot (built per scrape)."""

    def __init__(self, snap: dict[str, Any]) -> None:
        self.snap = snap

    def collect(self):  # type: ignore[no-untyped-def]
        snap = self.snap
        g = GaugeMetricFamily
        node_cpu = g(
            "heroctl_node_cpu_used_percent", "Busy CPU of the node, % of all cores", labels=["node"]
        )
        node_cpu_total = g(
            "heroctl_node_cpu_total_mhz", "CPU the node offers (MHz)", labels=["node"]
        )
        mem_used = g("heroctl_node_memory_used_bytes", "Memory used on the node", labels=["node"])
        mem_total = g("heroctl_node_memory_total_bytes", "Memory the node offers", labels=["node"])
        disk_used = g(
            "heroctl_node_disk_used_bytes", "Disk used (data dir filesystem)", labels=["node"]
        )
        disk_total = g(
            "heroctl_node_disk_total_bytes", "Disk size (data dir filesystem)", labels=["node"]
        )
        node_allocs = g(
            "heroctl_node_allocations", "Pending and running allocations", labels=["node"]
        )
        node_up = g("heroctl_node_ready", "1 when the node is ready", labels=["node"])
        for n in snap["nodes"]:
            name = n["name"] or n["id"]
            node_up.add_metric([name], 1.0 if n["status"] == "ready" else 0.0)
            node_allocs.add_metric([name], n["allocations"])
            node_cpu_total.add_metric([name], n["cpu"]["total_mhz"] or 0)
            mem_total.add_metric([name], (n["memory"]["total_mb"] or 0) * 2**20)
            if n["cpu"]["used_percent"] is not None:
                node_cpu.add_metric([name], n["cpu"]["used_percent"])
            if n["memory"]["used_mb"] is not None:
                mem_used.add_metric([name], n["memory"]["used_mb"] * 2**20)
            if n["disk"]["used_mb"] is not None:
                disk_used.add_metric([name], n["disk"]["used_mb"] * 2**20)
            if n["disk"]["total_mb"]:
                disk_total.add_metric([name], n["disk"]["total_mb"] * 2**20)
        yield from (
            node_up,
            node_cpu,
            node_cpu_total,
            mem_used,
            mem_total,
            disk_used,
            disk_total,
            node_allocs,
        )
        allocs = g("heroctl_allocations", "Allocations by status", labels=["status"])
        for status, count in snap["allocations"].items():
            allocs.add_metric([status], count)
        yield allocs
        job_cpu = g(
            "heroctl_job_cpu_percent",
            "CPU of a job's running allocations, % of a core",
            labels=["job"],
        )
        job_mem = g(
            "heroctl_job_memory_bytes", "Memory of a job's running allocations", labels=["job"]
        )
        job_running = g(
            "heroctl_job_running_allocations", "Running allocations of a job", labels=["job"]
        )
        for j in snap["jobs"]:
            job_cpu.add_metric([j["name"]], j["cpu_percent"])
            job_mem.add_metric([j["name"]], j["memory_mb"] * 2**20)
            job_running.add_metric([j["name"]], j["running"])
        yield from (job_cpu, job_mem, job_running)
        raft = snap["raft"]
        yield g("heroctl_raft_index", "Raft index of the answering server", value=raft["index"])
        yield g("heroctl_raft_term", "Raft term", value=raft["term"] or 0)
        leader = g("heroctl_raft_leader", "1 for the current leader", labels=["server"])
        if raft["leader"]:
            leader.add_metric([raft["leader"]], 1)
        yield leader
        rps = g("heroctl_api_requests_per_second", "API requests/s (last 10 s)", labels=["server"])
        for server, value in snap["api"]["servers"].items():
            if value is not None:
                rps.add_metric([server], value)
        yield rps


def prometheus_text(snap: dict[str, Any]) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap))
    return generate_latest(registry), CONTENT_TYPE_LATEST


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
    metric = _metric(request)
    start, end, step = _window(request)
    job = request.query.get("job") or None
    node_ref = request.query.get("node") or None
    alloc_ref = request.query.get("alloc") or None
    if sum(x is not None for x in (job, node_ref, alloc_ref)) > 1:
        raise ApiError(400, "invalid_parameter", "give at most one of job, node and alloc")
    params = {"metric": metric, "from": repr(start), "to": repr(end)}
    if step is not None:
        params["step"] = repr(step)
    targets: list[str] = []  # node names to ask
    if alloc_ref is not None:
        alloc = _alloc_or_404(request, alloc_ref)
        params["alloc"] = alloc["id"]
        targets = [alloc.get("node_name") or ""]
        if metric not in ALLOC_FIELDS:
            raise ApiError(
                400, "invalid_parameter", f"an allocation has {', '.join(ALLOC_FIELDS)} only"
            )
    elif job is not None:
        params["job"] = job
        with replica.state.read() as s:
            names = {a.get("node_name") for a in s.allocs_of(job=job)}
            if job not in s.table("jobs") and not names:
                raise ApiError(404, "job_not_found", f"job '{job}' does not exist")
        targets = sorted(n for n in names if n)
        if metric not in ALLOC_FIELDS:
            raise ApiError(400, "invalid_parameter", f"a job has {', '.join(ALLOC_FIELDS)} only")
    else:
        with replica.state.read() as s:
            if node_ref is not None:
                node = find_node(s, node_ref)
                if node is None:
                    raise ApiError(404, "node_not_found", f"node '{node_ref}' does not exist")
                targets = [node.get("name", "")]
            else:
                targets = sorted(n.get("name", "") for n in s.table("nodes").values())

    async def ask(name: str) -> dict[str, Any]:
        return await _node_query(request, locate(request, name), params)

    results = await asyncio.gather(*(ask(n) for n in targets), return_exceptions=True)
    series: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    steps: list[float] = []
    for name, result in zip(targets, results, strict=True):
        if isinstance(result, NodeUnreachable):
            errors.append({"node": name, "message": str(result)})
            continue
        if isinstance(result, BaseException):
            raise result
        steps.append(float(result.get("step") or 0))
        for s in result.get("series") or []:
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
    return web.json_response(out)
