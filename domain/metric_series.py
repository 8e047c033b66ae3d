"""Metric series as the API and the agent both see them: which fields a node,
an allocation and an ingress host have, which metric a query may ask for, and
how points fold into step-wide buckets (aligned on multiples of the step, so
series from several nodes line up and can be summed).

A value may be NaN: "no figure this round" (an ingress host's upstream
latency when no request reached an upstream). Buckets skip it, so an
average is over the rounds that had a figure and a bucket with none has no
point at all (never a 0 that would read as "fast").
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# cpu: % of all the node's cores (0-100); memory, disk: MB.
NODE_FIELDS = ("cpu", "memory", "memory_total", "disk", "disk_total")
# cpu: % of one core (200 = two cores busy), summed over the tasks; memory: MB.
ALLOC_FIELDS = ("cpu", "memory")
# Per ingress host (a site of the node's nginx): requests, 5xx responses and bytes per
# second over the sampling interval; upstream_p99_ms: the p99 of the upstream response
# time over the access-log reader's window (agent.ingress.access_log), NaN without one.
INGRESS_FIELDS = ("requests", "responses_5xx", "bytes_sent", "bytes_received", "upstream_p99_ms")
# Summing a latency over nodes means nothing: a total of these is their maximum.
INGRESS_MAX_FIELDS = frozenset({"upstream_p99_ms"})
METRICS = tuple(sorted({*NODE_FIELDS, *ALLOC_FIELDS, *INGRESS_FIELDS}))
MAX_HOST_LENGTH = 253
MAX_POINTS = 2000  # per series in one answer: a longer window gets a wider step

Point = tuple[float, tuple[float, ...]]


def bucketize(points: Iterable[Point], index: int, start: float, end: float, step: float):
    """``[[t, avg], ...]`` of field ``index`` in ``step``-wide buckets
    (aligned on multiples of ``step``) between ``start`` and ``end``."""
    sums: dict[float, list[float]] = {}
    for t, values in points:
        if t < start or t > end or index >= len(values) or math.isnan(values[index]):
            continue
        bucket = math.floor(t / step) * step
        acc = sums.setdefault(bucket, [0.0, 0])
        acc[0] += values[index]
        acc[1] += 1
    return [[b, round(s / n, 3)] for b, (s, n) in sorted(sums.items())]


def bucketize_columns(times: list[float], values: list[float], step: float) -> list[list[float]]:
    """``[[t, avg], ...]`` in ``step``-wide buckets aligned on multiples of ``step``."""
    out: list[list[float]] = []
    bucket = total = 0.0
    n = 0
    for t, v in zip(times, values, strict=True):
        if v != v:  # NaN: no figure that round
            continue
        b = math.floor(t / step) * step
        if n and b != bucket:
            out.append([bucket, round(total / n, 3)])
            n, total = 0, 0.0
        bucket = b
        total += v
        n += 1
    if n:
        out.append([bucket, round(total / n, 3)])
    return out


def metric_problem(metric: str, host: str | None) -> str | None:
    """Why a query for ``metric`` (with ``?host=`` when ``host`` is not None)
    cannot be answered, or None: the ingress metrics need a host, the others
    take none. The servers and the agents check alike (one 400 message)."""
    if metric not in METRICS:
        return f"metric must be one of {', '.join(METRICS)}"
    if metric in INGRESS_FIELDS:
        if not host:
            return f"the ingress metric {metric} needs host=<a site's host name>"
        if len(host) > MAX_HOST_LENGTH or any(c.isspace() or c in "/?#" for c in host):
            return "host must be a host name"
        return None
    if host is not None:
        return f"host goes with the ingress metrics only: {', '.join(INGRESS_FIELDS)}"
    return None


def choose_step(start: float, end: float, source_step: float, step: float | None) -> float:
    """The step of an answer: at least the source's, at most MAX_POINTS points."""
    least = max(source_step, (end - start) / MAX_POINTS)
    if step is None or step < least:
        step = least
    if source_step > 0:
        step = math.ceil(step / source_step - 1e-9) * source_step
    return float(step)
