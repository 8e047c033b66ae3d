"""The access log reader on files written as nginx writes them (appended JSON
lines): increments, partial lines, truncation, replacement, bounded memory.
The same reader over a real nginx's log is in test_serving.py."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from agent.ingress import AccessLogReader
from agent.ingress.access_log import OTHER_HOSTS


def line(
    host: str, status: int = 200, sent: int = 100, upstream: str = "0.010", at: float | None = None
) -> str:
    entry = {
        "msec": time.time() if at is None else at,
        "host": host,
        "status": status,
        "bytes_sent": sent,
        "request_length": 50,
        "request_time": 0.01,
        "upstream_response_time": upstream,
        "upstream_addr": "127.0.0.1:1",
        "method": "GET",
    }
    return json.dumps(entry) + "\n"


def append(path: Path, *lines: str) -> None:
    with path.open("a") as f:
        f.write("".join(lines))


def test_counts_by_host_and_class_incrementally(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    append(log, line("old.test"))  # before the reader: not counted
    reader = AccessLogReader(log)
    append(log, line("a.test"), line("a.test", 404, 10), line("b.test", 503, 20, "-"))
    assert reader.poll() == 3
    append(log, line("a.test", 301, 5))
    assert reader.poll() == 1 and reader.poll() == 0
    snap = reader.snapshot()
    assert set(snap) == {"a.test", "b.test"}
    a = snap["a.test"]
    assert a["requests"] == 3 and a["bytes_sent"] == 115 and a["bytes_received"] == 150
    assert a["responses"] == {"1xx": 0, "2xx": 1, "3xx": 1, "4xx": 1, "5xx": 0}
    assert a["upstream_p50_ms"] == 10.0
    assert snap["b.test"]["upstream_p50_ms"] is None  # no upstream answered


def test_a_partial_line_waits_for_its_end(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.touch()
    reader = AccessLogReader(log)
    whole = line("a.test")
    append(log, whole[:20])
    assert reader.poll() == 0
    append(log, whole[20:])
    assert reader.poll() == 1


def test_malformed_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.touch()
    reader = AccessLogReader(log)
    append(log, "not json\n", '{"host": "a.test"}\n', line("a.test"))
    assert reader.poll() == 1 and reader.malformed == 2


def test_the_reader_truncates_a_big_log_and_keeps_counting(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.touch()
    reader = AccessLogReader(log, truncate_above=1000)
    with log.open("a") as writer:  # one O_APPEND writer kept open, as nginx's
        writer.write(line("a.test") * 10)
        writer.flush()
        assert reader.poll() == 10
        assert log.stat().st_size == 0
        writer.write(line("a.test") * 2)
        writer.flush()
        assert log.stat().st_size < 1000  # appended at the new end, no hole
        assert reader.poll() == 2
    assert reader.snapshot()["a.test"]["requests"] == 12


def test_a_log_truncated_or_replaced_by_someone_else_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    append(log, line("a.test") * 5)
    reader = AccessLogReader(log, from_start=True)
    assert reader.poll() == 5
    os.truncate(log, 0)
    append(log, line("a.test"))
    assert reader.poll() == 1
    log.rename(tmp_path / "access.log.1")
    append(log, line("a.test") * 3)
    assert reader.poll() == 3
    assert reader.snapshot()["a.test"]["requests"] == 9


def test_memory_is_bounded_whatever_the_hosts_and_requests(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.touch()
    reader = AccessLogReader(log, max_hosts=3, samples_per_host=8)
    append(log, *(line(f"h{i}.test") for i in range(10)), *(line("h0.test") for _ in range(50)))
    reader.poll()
    assert reader.hosts() == sorted(["h0.test", "h1.test", "h2.test", OTHER_HOSTS])
    assert reader.snapshot()[OTHER_HOSTS]["requests"] == 7
    stats = reader.stats("h0.test")
    assert stats is not None and stats.requests == 51 and len(stats.samples) == 8


def test_latency_percentiles_cover_the_window_only(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.touch()
    reader = AccessLogReader(log, window=60)
    now = time.time()
    old = [line("a.test", upstream="9.000", at=now - 120) for _ in range(50)]
    recent = [line("a.test", upstream=f"{ms / 1000:.3f}", at=now) for ms in range(1, 101)]
    append(log, *old, *recent, line("a.test", upstream="0.001, 0.004", at=now))
    reader.poll()
    snap = reader.snapshot(now=now)["a.test"]
    assert snap["requests"] == 151
    assert snap["upstream_p50_ms"] == 50.0 and snap["upstream_p99_ms"] == 99.0
