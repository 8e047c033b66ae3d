"""The metrics store: queries and their steps, expiry, and the journal and
snapshot across restarts. Time is injected: no sleeps."""

from __future__ import annotations

from pathlib import Path

from agent.metrics.store import JOURNAL, SNAPSHOT, MetricsStore
from tests.agent.metrics.support import T0, Clock, fill, node


def test_raw_samples_and_steps() -> None:
    clock = Clock()
    store = MetricsStore(None, clock=clock)
    fill(store, clock, 600)
    q = store.query("cpu", start=T0, end=clock.now)
    assert q["step"] == 10
    points = q["series"][0]["points"]
    assert len(points) == 60 and points[0] == [T0, 0.0] and points[-1] == [T0 + 590, 9.0]
    # a wider step averages, aligned on multiples of the step
    q = store.query("memory", alloc="a1", start=T0, end=clock.now, step=120)
    assert q["step"] == 120
    assert q["series"][0]["points"][0] == [T0, 5.0]  # minutes 0 and 1: 0 and 10
    assert q["series"][0]["labels"] == {"alloc": "a1", "job": "web", "group": "g"}
    # by job; unknown metric for the scope gives nothing
    assert len(store.query("cpu", job="web", start=T0, end=clock.now)["series"]) == 1
    assert store.query("cpu", job="other", start=T0, end=clock.now)["series"] == []
    assert store.query("disk", alloc="a1", start=T0, end=clock.now)["series"] == []


def test_old_allocations_expire_and_restart_keeps_history(tmp_path: Path) -> None:
    clock = Clock()
    store = MetricsStore(tmp_path, clock=clock, compact_interval=300)
    fill(store, clock, 900)
    assert (tmp_path / SNAPSHOT).exists()  # compacted after 300 s
    journal_lines = (tmp_path / JOURNAL).read_bytes().count(b"\n")
    assert 0 < journal_lines < 60
    before = store.query("cpu", start=T0, end=clock.now)
    # a crash: no close(), the journal is replayed over the snapshot
    with open(tmp_path / JOURNAL, "ab") as f:
        f.write(b'{"t": 1800000')  # a torn last line
    again = MetricsStore(tmp_path, clock=clock, compact_interval=300)
    assert again.query("cpu", start=T0, end=clock.now) == before
    assert again.current()["allocs"]["a1"]["job"] == "web"
    # a clean stop and start
    again.close()
    third = MetricsStore(tmp_path, clock=clock)
    assert third.query("cpu", start=T0, end=clock.now) == before
    assert (tmp_path / JOURNAL).read_bytes() == b""
    # 31 days later the allocation (sampled no more) is forgotten
    clock.now += 31 * 24 * 3600
    third.record(clock.now, node(1), {})
    third.compact()
    assert "alloc:a1" not in third.series
    assert (
        MetricsStore(tmp_path, clock=clock).query("memory", alloc="a1", start=0, end=clock.now)[
            "series"
        ]
        == []
    )
