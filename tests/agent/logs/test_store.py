"""The log store: tail filters, the size cap, a restart, retention after a
stop. Time is injected where retention depends on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.logs.lines import LogLine
from agent.logs.store import LogStore
from tests.agent.logs.support import lines, texts


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_tail_filters_and_order(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    store.append("a1", lines(5) + lines(3, 100, stream="stderr") + lines(2, 200, task="side"))
    assert texts(store.tail("a1", 3)) == ["line 102", "line 200", "line 201"]
    assert texts(store.tail("a1", 100, stream="stderr")) == ["line 100", "line 101", "line 102"]
    assert texts(store.tail("a1", 2, task="web", stream="stdout")) == ["line 3", "line 4"]
    assert len(store.tail("a1", None)) == 10
    assert store.tail("a1", 0) == []
    since = store.tail("a1", None)[6].us
    assert texts(store.tail("a1", None, since=since)) == ["line 102", "line 200", "line 201"]
    assert store.tail("unknown", 10) == []
    with pytest.raises(ValueError):
        store.tail("../etc", 10)


def test_tabs_and_long_lines_survive(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    store.append("a1", [LogLine(1, "stdout", "web", "a\tb\tc")])
    assert store.tail("a1", 1)[0].line == "a\tb\tc"


def test_cap_drops_oldest(tmp_path: Path) -> None:
    store = LogStore(tmp_path, max_bytes=64 * 1024)
    for i in range(200):
        store.append("a1", lines(50, i * 50))  # ~ 35 bytes a record: ~350 KB in all
    assert store.size("a1") <= 64 * 1024
    kept = store.tail("a1", None)
    assert kept[-1].line == "line 9999"
    numbers = [int(ln.line.split()[1]) for ln in kept]
    assert numbers == list(range(numbers[0], 10000)), "what is kept is the newest, without gaps"
    assert numbers[0] > 0 and len(numbers) > 1000
    on_disk = sum(p.stat().st_size for p in (tmp_path / "a1").glob("*.log"))
    assert on_disk <= 64 * 1024


def test_survives_restart(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    store.append("a1", lines(10), job="web", cursor={"web:stdout": 42})
    store.close()
    again = LogStore(tmp_path)
    assert texts(again.tail("a1", 2)) == ["line 8", "line 9"]
    assert again.cursor("a1", "web:stdout") == 42
    assert again.meta("a1")["job"] == "web"
    again.append("a1", lines(1, 10))
    assert texts(again.tail("a1", 2)) == ["line 9", "line 10"]
    assert again.allocations() == ["a1"]


def test_retention_after_stop(tmp_path: Path) -> None:
    clock = Clock()
    store = LogStore(tmp_path, retention=3600, clock=clock)
    store.append("old", lines(3))
    store.append("live", lines(3))
    assert store.sweep({"old", "live"}) == []
    clock.now += 10_000
    # "old" stops now: its logs stay readable for the retention, counted from the stop.
    assert store.sweep({"live"}) == []
    assert store.meta("old")["stopped_at"] == clock.now
    clock.now += 3599
    assert store.sweep({"live"}) == []
    assert texts(store.tail("old", 1)) == ["line 2"]
    # a restarted agent keeps the stop time (it is in meta.json)
    store = LogStore(tmp_path, retention=3600, clock=clock)
    clock.now += 2
    assert store.sweep({"live"}) == ["old"]
    assert not (tmp_path / "old").exists()
    assert store.tail("old", 10) == []
    assert store.allocations() == ["live"]
    # an allocation seen active again is no longer stopped
    clock.now += 1
    store.sweep(set())
    assert "stopped_at" in store.meta("live")
    store.sweep({"live"})
    assert "stopped_at" not in store.meta("live")
