"""Downsampled tiers: older windows are answered from the 1-minute and
1-hour averages, folded in as samples arrive. Time is injected."""

from __future__ import annotations

import math

from agent.metrics.series import Series
from agent.metrics.store import MetricsStore
from tests.agent.metrics.support import T0, Clock, fill


def test_downsampled_tiers_cover_older_windows() -> None:
    clock = Clock()
    store = MetricsStore(None, clock=clock)
    fill(store, clock, 2 * 24 * 3600, step=30)  # two days
    # the raw tier keeps 24 h only
    raw = store.series["node"].raw
    assert raw[-1][0] - raw[0][0] <= 24 * 3600 < clock.now - T0
    # a 2-day window is answered from the 1-minute tier
    q = store.query("cpu", start=T0, end=clock.now, step=60)
    points = q["series"][0]["points"]
    assert q["step"] >= 60
    assert points[0][0] == T0
    # never more than MAX_POINTS per series
    assert len(points) <= 2000
    # 1-minute averages: node cpu is the minute number, so each bucket equals its minute
    q = store.query("cpu", start=T0, end=T0 + 600, step=60)
    assert q["series"][0]["points"] == [[T0 + 60 * m, float(m)] for m in range(11)]


def test_minute_tier_values() -> None:
    clock = Clock()
    store = MetricsStore(None, clock=clock)
    fill(store, clock, 3 * 24 * 3600, step=60)
    start = clock.now - 2 * 24 * 3600  # older than the raw tier
    q = store.query("cpu", start=start, end=start + 600, step=60)
    points = q["series"][0]["points"]
    assert q["step"] == 60
    assert [p[1] for p in points] == [(p[0] - T0) // 60 for p in points]
    # hour tier beyond 7 days
    store2 = MetricsStore(None, clock=clock)
    clock.now = T0
    fill(store2, clock, 9 * 24 * 3600, step=300)
    q = store2.query("cpu", start=T0 + 3600, end=T0 + 5 * 3600)
    assert q["step"] == 3600
    pts = q["series"][0]["points"]
    assert len(pts) == 5 and pts[0][0] == T0 + 3600
    # the hour average of minutes 60..115 sampled every 5 minutes
    assert pts[0][1] == sum(range(60, 120, 5)) / 12


def test_a_snapshot_from_before_missing_values_still_loads() -> None:
    """Buckets being filled were [start, sums, rounds] before a value could be
    NaN: every round counted for every field."""
    doc = {"labels": {}, "fields": ["cpu", "memory"], "acc": [[T0, [6.0, 30.0], 3], None]}
    s = Series.load("node", doc)
    s.add(T0 + 10, (9.0, math.nan))
    times, values, step = s.source(1, T0, T0 + 60, T0 + 2 * 24 * 3600, 10.0)
    assert step == 60 and times == [T0] and values == [10.0]  # (30 + nothing) / 3
    times, values, _ = s.source(0, T0, T0 + 60, T0 + 2 * 24 * 3600, 10.0)
    assert values == [3.75]  # (6 + 9) / 4
