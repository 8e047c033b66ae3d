"""Where a deployment's time went, read from its allocations' events.

Every allocation document (``GET /v1/allocations/:id``) carries its event
timeline: ``placed`` (the server's plan, the FSM's timestamp), ``started``
(the agent, once Docker's start returned), ``health`` events from the agent
(``check failing: ...`` / ``check passing: ...`` when a check changes, but
no event for a first check that passes; ``allocation is healthy`` once every
check passed for ``min_healthy_time`` without a break; ``allocation not
healthy within ...`` at ``healthy_deadline``), and for a replaced one
``stop`` (the plan that stopped it) and ``killed`` (the agent, once its
container stopped). Servers and agents share this machine's clock, so the
marks compare with each other and with the benchmark's own wall clock.

The first passing check is ``healthy - min_healthy_time`` when no ``check
passing`` event says it (the agent's HealthTracker turns an allocation
healthy when ``min_healthy_time`` has passed since its checks began to pass,
woken for that moment): so "to_check_passing" also holds the agent's
lateness in noticing min_healthy_time had passed, if any.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from bench.common import median

HEALTH_MARKS = (
    ("allocation is healthy", "healthy"),
    ("allocation not healthy", "unhealthy"),
    ("check passing", "check_passing"),
    ("check failing", "check_failing"),
)


def marks(detail: Mapping[str, Any], origin: float) -> dict[str, float]:
    """The first time of each event kind, seconds after ``origin`` (unix time)."""
    out: dict[str, float] = {}
    for ev in detail.get("events") or ():
        kind, message = ev.get("type"), ev.get("message") or ""
        name = kind if kind in ("placed", "started", "stop", "killed") else None
        if kind == "health":
            name = next((n for prefix, n in HEALTH_MARKS if message.startswith(prefix)), None)
        if name is not None and name not in out and ev.get("ts"):
            out[name] = ev["ts"] / 1000.0 - origin
    return out


def _r(x: float) -> float:
    return round(x, 3)


def _span(values: Iterable[float]) -> list[float] | None:
    vals = list(values)
    return [_r(min(vals)), _r(max(vals))] if vals else None


def _passing(m: Mapping[str, float], mht: float) -> float | None:
    if "check_passing" in m and m["check_passing"] <= m.get("healthy", math.inf):
        return m["check_passing"]
    return m["healthy"] - mht if "healthy" in m else None


def version_marks(
    details: Iterable[Mapping[str, Any]], version: int, origin: float
) -> list[dict[str, Any]]:
    """The marks of every allocation of ``version`` placed after ``origin``,
    in the order they were placed."""
    rows = []
    for d in details:
        m = marks(d, origin)
        if d.get("job_version") == version and m.get("placed", -1.0) >= -0.5:
            rows.append({"id": d["id"], "node": d.get("node_name"), **m})
    return sorted(rows, key=lambda r: (r["placed"], r["id"]))


def start_times(rows: list[dict[str, Any]], mht: float) -> list[float]:
    """Per allocation: placed -> checks passing, i.e. placed -> healthy minus
    min_healthy_time (what one replica costs beyond min_healthy_time)."""
    return [r["healthy"] - r["placed"] - mht for r in rows if "healthy" in r]


def rolling_breakdown(
    rows: list[dict[str, Any]],
    mht: float,
    max_parallel: int,
    successful_at: float | None,
    seen_at: float,
) -> dict[str, Any]:
    """Per batch (the allocations in placement order, ``max_parallel`` at a
    time) and along the critical path: the chain from the last allocation to
    turn healthy back through the healthy allocation whose report let it be
    placed (the latest healthy one before its placement), to the submit.
    Along that chain the time splits exactly into scheduler delay (healthy
    -> the next placement; for the first: submit -> placed), container start
    (placed -> started), check wait (started -> checks passing), min_healthy
    (passing -> healthy) and the tail (last healthy -> deployment successful
    on the server -> seen by the client's long poll)."""
    healthy_at = sorted((r["healthy"], r["id"]) for r in rows if "healthy" in r)

    def freed_by(r: Mapping[str, Any]) -> tuple[float, str | None]:
        before = [(h, i) for h, i in healthy_at if h <= r["placed"] + 1e-3 and i != r["id"]]
        return before[-1] if before else (0.0, None)

    batches = []
    for k in range(0, len(rows), max_parallel):
        group = rows[k : k + max_parallel]
        passing = [p for r in group if (p := _passing(r, mht)) is not None]
        batches.append(
            {
                "placed": _span(r["placed"] for r in group),
                "scheduler_delay_s": _r(max(r["placed"] - freed_by(r)[0] for r in group)),
                "container_start_s": _span(
                    r["started"] - r["placed"] for r in group if "started" in r
                ),
                "to_check_passing_s": _span(
                    p - r["started"]
                    for r in group
                    if "started" in r and (p := _passing(r, mht)) is not None
                ),
                "checks_passing": _span(passing),
                "healthy": _span(r["healthy"] for r in group if "healthy" in r),
                "nodes": [r.get("node") for r in group],
            }
        )
    path = _critical_path(rows, healthy_at, freed_by, mht)
    last_healthy = healthy_at[-1][0] if healthy_at else math.nan
    tail = {
        "last_healthy_to_successful_s": _r(successful_at - last_healthy)
        if successful_at is not None
        else None,
        "successful_to_seen_s": _r(seen_at - successful_at) if successful_at is not None else None,
    }
    return {"batches": batches, "critical_path": path, "tail": tail}


def _critical_path(
    rows: list[dict[str, Any]], healthy_at: list[tuple[float, str]], freed_by: Any, mht: float
) -> dict[str, Any]:
    by_id = {r["id"]: r for r in rows}
    parts = {"scheduler_delay_s": 0.0, "container_start_s": 0.0, "check_wait_s": 0.0}
    parts["min_healthy_s"] = 0.0
    chain: list[str] = []
    current = by_id.get(healthy_at[-1][1]) if healthy_at else None
    while current is not None and len(chain) <= len(rows):
        chain.append(current["id"][:8])
        passing = _passing(current, mht)
        started = current.get("started", current["placed"])
        at, parent = freed_by(current)
        parts["scheduler_delay_s"] += current["placed"] - at
        parts["container_start_s"] += started - current["placed"]
        if passing is not None:
            parts["check_wait_s"] += passing - started
            parts["min_healthy_s"] += current["healthy"] - passing
        current = by_id.get(parent) if parent else None
    return {"allocations": len(chain), **{k: _r(v) for k, v in parts.items()}}


def stop_to_killed(
    details: Iterable[Mapping[str, Any]], version: int, origin: float
) -> dict[str, Any]:
    """The replaced (older) allocations stopped after ``origin``: the plan's
    stop -> the agent's killed (the container gone), in seconds."""
    waits = []
    for d in details:
        m = marks(d, origin)
        if d.get("job_version") != version and "stop" in m and "killed" in m and m["stop"] >= 0:
            waits.append(m["killed"] - m["stop"])
    if not waits:
        return {"count": 0}
    return {
        "count": len(waits),
        "median_s": _r(median(waits)),
        "max_s": _r(max(waits)),
    }


def floor_of(starts: list[float], mht: float, batches: int) -> dict[str, Any]:
    """batches x (start + min_healthy_time), with ``start`` the median over
    the version's allocations of placed -> checks passing."""
    start = median(starts) if starts else math.nan
    return {
        "start_s_median": _r(start),
        "start_s_range": _span(starts),
        "min_healthy_time_s": mht,
        "batches": batches,
        "floor_s": _r(batches * (start + mht)),
        "floor_s_with_fastest_start": _r(batches * (min(starts) + mht)) if starts else None,
    }
