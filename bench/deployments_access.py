"""Which allocation each failed request went to, from every node's ingress
access log (nginx's JSON lines: ``msec`` at the end of the request,
``request_time``, ``status``, ``method``, ``upstream_addr``; see
agent.ingress.render.LOG_FORMAT_FIELDS), and how long each node's nginx kept
sending requests to an allocation after the plan had stopped it.

Every task publishes its port on 127.0.0.1 and each node has its own slice of
host ports, so an upstream address names one allocation (of those alive at
the time). A request is bad when nginx answered 5xx, or when it is a slow
POST (``/cgi-bin/slow`` sleeps 0.3 s before its body) answered 200 in less
than 0.3 s: its body was cut short when its container stopped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from agent.ingress.paths import Paths
from bench.deployments_cluster import DeployCluster
from bench.deployments_timeline import marks

SLOW_S = 0.3  # the CGI's sleep: a complete slow answer takes at least this


def read_access(dc: DeployCluster, host: str, since: float) -> list[dict[str, Any]]:
    """Every node's access-log lines for ``host`` that ended after ``since``
    (unix time), each with its ``node`` and its start (``sent``)."""
    out: list[dict[str, Any]] = []
    for server in dc.cluster.servers:
        path = Paths.in_prefix(server.data_dir / "agent" / "ingress").access_log
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("host") != host or float(entry.get("msec", 0)) < since:
                continue
            entry["node"] = server.name
            entry["sent"] = float(entry["msec"]) - float(entry.get("request_time") or 0)
            out.append(entry)
    return sorted(out, key=lambda e: e["sent"])


def _bad(entry: Mapping[str, Any]) -> str | None:
    status = int(entry.get("status", 0))
    if status >= 500:
        return f"http_{status}"
    if entry.get("method") == "POST" and float(entry.get("request_time") or 0) < SLOW_S - 0.005:
        return "http_200_truncated"
    return None


def _lives(details: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per allocation: its address, version and life (placed -> killed), unix times."""
    out = []
    for d in details:
        port = (d.get("ports") or {}).get("http")
        if port is None:
            continue
        m = marks(d, 0.0)
        out.append(
            {
                "id": d["id"][:8],
                "address": f"127.0.0.1:{port}",
                "version": d.get("job_version"),
                "node": d.get("node_name"),
                "placed": m.get("placed", 0.0),
                "stop": m.get("stop"),
                "killed": m.get("killed"),
            }
        )
    return out


def _owner(lives: list[dict[str, Any]], address: str, at: float) -> dict[str, Any] | None:
    found = [
        a
        for a in lives
        if a["address"] == address and a["placed"] <= at + 0.5 and (a["killed"] or 1e18) >= at - 5
    ]
    return max(found, key=lambda a: a["placed"]) if found else None


def attribute(
    entries: list[dict[str, Any]], details: Iterable[Mapping[str, Any]], version: int
) -> dict[str, Any]:
    """The bad requests with the allocation that answered them (the last
    upstream nginx tried), and per stopped allocation and node: the last
    request nginx sent it after the plan had stopped it, and its kill."""
    lives = _lives(details)
    bad = []
    for e in entries:
        kind = _bad(e)
        if kind is None:
            continue
        address = str(e.get("upstream_addr") or "").split(",")[-1].strip()
        row: dict[str, Any] = {
            "kind": kind,
            "node": e["node"],
            "method": e.get("method"),
            "upstream": address or None,
        }
        owner = _owner(lives, address, e["sent"]) if address else None
        if owner is not None:
            row |= {"alloc": owner["id"], "alloc_version": owner["version"]}
            if owner["stop"] is not None:
                row["sent_after_stop_s"] = round(e["sent"] - owner["stop"], 3)
            if owner["killed"] is not None:
                row["killed_after_sent_s"] = round(owner["killed"] - e["sent"], 3)
        bad.append(row)
    lag = []
    for a in lives:
        if a["version"] == version or a["stop"] is None:
            continue
        after = [
            e
            for e in entries
            if e["sent"] >= a["stop"] and a["address"] in str(e.get("upstream_addr"))
        ]
        per_node = {}
        for e in after:
            per_node[e["node"]] = round(e["sent"] - a["stop"], 3)
        lag.append(
            {
                "alloc": a["id"],
                "stop_to_killed_s": round(a["killed"] - a["stop"], 3) if a["killed"] else None,
                "requests_after_stop": len(after),
                "last_request_after_stop_s": per_node,
            }
        )
    return {"bad_requests": bad, "routing_after_stop": lag}
