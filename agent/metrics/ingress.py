"""This node's ingress traffic per host, turned into what the metrics keep.

The access-log reader (:mod:`agent.ingress.access_log`) counts requests,
responses by class and bytes *since it started* (cumulative counters, reset
when the agent or its reader restarts), and gives the upstream p50/p99 over
its own sliding window. History wants rates, so :class:`IngressRates` keeps
the previous round's counters and divides each increase by the time between
the rounds: ``requests`` in the history is **requests per second** averaged
over the sampling interval, not a count per interval (a rate does not change
meaning with the interval, and rates of several nodes add up).

A counter that went down was reset (the reader started over): its increase is
its new value, as Prometheus' ``rate()`` treats a reset. The first round has
nothing to compare with: it sets the baseline and records no rate.

Pure arithmetic on the stats dicts, no I/O: the sampler calls it on the loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from domain.metric_series import INGRESS_FIELDS, INGRESS_MAX_FIELDS

__all__ = ["CLASSES", "IngressRates", "merge_points"]

CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

HostStats = Mapping[str, Any]


def _count(stats: HostStats, counter: str) -> float:
    """One cumulative counter of a host's stats (``responses_5xx``: a class)."""
    if counter.startswith("responses_"):
        value = (stats.get("responses") or {}).get(counter[len("responses_") :])
    else:
        value = stats.get(counter)
    try:
        return max(0.0, float(value or 0))
    except (TypeError, ValueError):
        return 0.0


def _latency(value: Any) -> float:
    """A latency in ms, NaN when there is none (no request reached an upstream)."""
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def current_stats(stats: HostStats, requests_per_second: float | None) -> dict[str, Any]:
    """A host's line of ``/v1/agent/metrics/current``'s ``ingress``: the reader's
    counters (cumulative), its latencies (windowed, ms) and the request rate of
    the last interval (None on the first round)."""
    responses = stats.get("responses") or {}
    return {
        "requests": int(_count(stats, "requests")),
        "requests_per_second": requests_per_second,
        "responses": {c: int(_count({"responses": responses}, f"responses_{c}")) for c in CLASSES},
        "bytes_sent": int(_count(stats, "bytes_sent")),
        "bytes_received": int(_count(stats, "bytes_received")),
        "upstream_p50_ms": _finite(_latency(stats.get("upstream_p50_ms"))),
        "upstream_p99_ms": _finite(_latency(stats.get("upstream_p99_ms"))),
    }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


class IngressRates:
    """Per host: the counters of the previous round, to make rates of the next."""

    def __init__(self) -> None:
        self._at: float | None = None
        self._previous: dict[str, dict[str, float]] = {}

    def update(
        self, t: float, snapshot: Mapping[str, HostStats]
    ) -> tuple[dict[str, dict[str, float | None]], dict[str, dict[str, Any]]]:
        """(history point per host: INGRESS_FIELDS, rates per second and the p99
        in ms or None; the current stats per host) of the round at ``t``.
        Hosts first seen after the baseline count from 0 (the reader had no
        request of them at the previous round)."""
        counters = [f for f in INGRESS_FIELDS if f not in INGRESS_MAX_FIELDS]
        elapsed = None if self._at is None else t - self._at
        history: dict[str, dict[str, float | None]] = {}
        current: dict[str, dict[str, Any]] = {}
        now: dict[str, dict[str, float]] = {}
        for host, stats in snapshot.items():
            host = str(host)
            now[host] = {c: _count(stats, c) for c in counters}
            rps: float | None = None
            if elapsed is not None and elapsed > 0:
                before = self._previous.get(host, {})
                point: dict[str, float | None] = {}
                for c in counters:
                    value, last = now[host][c], before.get(c, 0.0)
                    increase = value - last if value >= last else value  # reset: from 0
                    point[c] = round(increase / elapsed, 3)
                for f in INGRESS_MAX_FIELDS:
                    point[f] = _finite(_latency(stats.get(f)))
                history[host] = point
                rps = point["requests"]
            current[host] = current_stats(stats, rps)
        if elapsed is None or elapsed > 0:
            self._at, self._previous = t, now
        return history, current


def merge_points(
    into: dict[str, float | None] | None, point: Mapping[str, float | None]
) -> dict[str, float | None]:
    """Two hosts' history points as one (the hosts beyond the store's cap):
    rates summed, latencies their maximum (a p99 of the merged traffic is
    at most the larger of the two)."""
    if into is None:
        return dict(point)
    out = dict(into)
    for f in INGRESS_FIELDS:
        a, b = out.get(f), point.get(f)
        if f in INGRESS_MAX_FIELDS:
            out[f] = b if a is None else a if b is None else max(a, b)
        else:
            out[f] = round((a or 0.0) + (b or 0.0), 3)
    return out
