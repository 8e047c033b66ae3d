"""The log store (caps, retention, restart, followers without gaps) and the
collector following real exec processes and, with an engine, containers.

Time is injected where retention depends on it; waits poll with deadlines.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent.drivers.base import TaskSpec
from agent.drivers.exec import ExecDriver
from agent.logs import LogCollector, LogLine, LogStore, format_ts, parse_docker_ts
from tests.support.cluster import wait_until

IMAGE = "heroctl-test/busybox:latest"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def lines(n: int, start: int = 0, stream: str = "stdout", task: str = "web") -> list[LogLine]:
    return [
        LogLine(1_700_000_000_000_000 + i, stream, task, f"line {i}")
        for i in range(start, start + n)
    ]


def texts(found: list[LogLine]) -> list[str]:
    return [ln.line for ln in found]


# --- format -------------------------------------------------------------------------------


def test_timestamps_round_trip() -> None:
    us = parse_docker_ts("2026-11-30T10:26:30.123456789Z")
    assert us is not None and format_ts(us) == "2026-11-30T10:26:30.123456Z"
    assert parse_docker_ts("2026-11-30T10:26:30Z") == us - 123456
    assert parse_docker_ts("2026-11-30T12:26:30.5+02:00") == us - 123456 + 500000
    assert parse_docker_ts("garbage") is None


# --- store ----------------------------------------------------------------------------------


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


async def test_subscription_has_no_gap_nor_duplicate(tmp_path: Path) -> None:
    """Subscribers join while a thread appends as fast as it can: each sees
    its backlog then every later line exactly once."""
    store = LogStore(tmp_path)
    loop = asyncio.get_running_loop()
    total = 20_000
    started = threading.Event()

    def writer() -> None:
        for i in range(0, total, 10):
            store.append("a1", lines(10, i))
            if i == 2000:
                started.set()

    thread = threading.Thread(target=writer)
    thread.start()
    await loop.run_in_executor(None, started.wait, 10)
    subs = []
    for _ in range(5):
        backlog, sub = await loop.run_in_executor(
            None, lambda: store.subscribe("a1", loop, lines=50)
        )
        subs.append((backlog, sub))
        await asyncio.sleep(0.001)
    await loop.run_in_executor(None, thread.join)
    for backlog, sub in subs:
        seen = texts(backlog)
        while not seen or seen[-1] != f"line {total - 1}":
            got = await sub.get(timeout=5)
            assert got, "the subscription stopped short"
            seen.extend(texts(got))
        numbers = [int(x.split()[1]) for x in seen]
        assert numbers == list(range(numbers[0], total))
        assert len(backlog) == 50
        sub.close()
    assert sub.dropped == 0


async def test_subscription_filters_and_lag_limit(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    loop = asyncio.get_running_loop()
    backlog, sub = store.subscribe("a1", loop, lines=10, stream="stderr", limit=5)
    assert backlog == []
    store.append("a1", lines(3) + lines(8, 10, stream="stderr"))
    got = await sub.get(timeout=5)
    assert texts(got) == [f"line {i}" for i in range(13, 18)]
    assert sub.dropped == 3
    assert await sub.get(timeout=0.01) == []
    sub.close()
    store.append("a1", lines(1, 50))  # nobody listens: nothing is kept for them


# --- collector: exec (real processes) ------------------------------------------------------


def _spec(alloc: str, node: str, command: list[str]) -> TaskSpec:
    return TaskSpec(
        alloc_id=alloc,
        job="printer",
        group="g",
        task="main",
        node=node,
        command=command,
        kill_timeout=1,
    )


def test_exec_task_output_is_followed_and_resumed(tmp_path: Path) -> None:
    driver = ExecDriver("n1", tmp_path / "agent")
    store = LogStore(tmp_path / "logs")
    collector = LogCollector(store, {"exec": driver}, exec_poll=0.02)
    script = "i=0; while [ $i -lt 30 ]; do echo line $i; i=$((i+1)); sleep 0.01; done; sleep 60"
    driver.start(_spec("alloc1", "n1", ["sh", "-c", script]))
    try:
        collector.sync(driver.list(), active={"alloc1"})

        def got(n: int) -> list[str]:
            return texts(store.tail("alloc1", None))

        wait_until(lambda: len(got(30)) >= 30, 10, message="30 lines")
        assert got(30) == [f"line {i}" for i in range(30)]
        assert {ln.stream for ln in store.tail("alloc1", None)} == {"stdout"}
        assert store.meta("alloc1")["job"] == "printer"
        # An agent restart: a new collector resumes at the stored offset (no duplicates).
        collector.close()
        with open(driver.task_dir("alloc1", "main") / "output.log", "a") as f:
            f.write("written while no agent ran\n")
        store = LogStore(tmp_path / "logs")
        collector = LogCollector(store, {"exec": driver}, exec_poll=0.02)
        collector.sync(driver.list(), active={"alloc1"})
        wait_until(lambda: len(store.tail("alloc1", None)) >= 31, 10, message="31 lines")
        assert texts(store.tail("alloc1", None))[-2:] == ["line 29", "written while no agent ran"]
        assert len(store.tail("alloc1", None)) == 31
        # The task is removed: its logs stay.
        driver.remove("alloc1", "main")
        collector.sync(driver.list(), active=set())
        wait_until(lambda: not collector.following(), 10, message="the follower to end")
        assert len(store.tail("alloc1", None)) == 31
    finally:
        collector.close()
        for st in driver.list():
            driver.remove(st.alloc_id, st.task)


# --- collector: docker ------------------------------------------------------------------------


def _docker_skip() -> str | None:
    try:
        subprocess.run(
            ["docker", "image", "inspect", IMAGE], check=True, capture_output=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"no Docker engine with {IMAGE} ({exc})"
    return None


@pytest.mark.docker
@pytest.mark.skipif(_docker_skip() is not None, reason=_docker_skip() or "")
def test_docker_streams_are_split_and_resumed(tmp_path: Path) -> None:
    from agent.drivers.docker import DockerDriver

    node = f"test-logs-{time.time_ns()}"
    driver = DockerDriver(node)
    store = LogStore(tmp_path / "logs")
    collector = LogCollector(store, {"docker": driver})
    script = (
        "i=0; while [ $i -lt 20 ]; do echo out $i; echo err $i >&2; i=$((i+1)); done; "
        "j=0; while true; do echo tick $j; j=$((j+1)); sleep 0.05; done"
    )
    spec = TaskSpec(
        alloc_id="dalloc1",
        job="printer",
        group="g",
        task="main",
        node=node,
        image=IMAGE,
        command=["sh", "-c", script],
        kill_timeout=1,
        memory=32,
    )

    def ticks() -> list[int]:
        found = texts(store.tail("dalloc1", None, stream="stdout"))
        return [int(x.split()[1]) for x in found if x.startswith("tick")]

    try:
        driver.start(spec)
        collector.sync(driver.list(), active={"dalloc1"})
        wait_until(lambda: len(ticks()) >= 5, 20, message="5 ticks")
        out = texts(store.tail("dalloc1", None, stream="stdout"))
        err = texts(store.tail("dalloc1", None, stream="stderr"))
        assert out[:20] == [f"out {i}" for i in range(20)]
        assert err == [f"err {i}" for i in range(20)]
        stamps = [ln.us for ln in store.tail("dalloc1", None, stream="stdout")]
        assert stamps == sorted(stamps) and abs(stamps[0] / 1e6 - time.time()) < 120
        # A new collector (an agent restart) resumes where the store ends:
        # the ticks printed meanwhile arrive, none twice, none missing.
        collector.close()
        before = ticks()[-1]
        wait_until(
            lambda: int(driver.logs("dalloc1", "main", 1).split()[1]) >= before + 5,
            20,
            message="ticks printed while no collector ran",
        )
        collector = LogCollector(store, {"docker": driver})
        collector.sync(driver.list(), active={"dalloc1"})
        wait_until(lambda: ticks()[-1] >= before + 10, 20, message="ticks after the resume")
        assert ticks() == list(range(ticks()[-1] + 1))
        # stopped and removed: the logs stay
        driver.stop("dalloc1", "main", 1)
        collector.sync(driver.list(), active=set())
        driver.remove("dalloc1", "main")
        collector.sync(driver.list(), active=set())
        wait_until(lambda: not collector.following(), 20, message="followers to end")
        kept = ticks()
        assert kept == list(range(kept[-1] + 1))
        assert len(store.tail("dalloc1", None, stream="stderr")) == 20
    finally:
        collector.close()
        driver.remove("dalloc1", "main")


def test_docker_resume_keeps_lines_sharing_a_microsecond(tmp_path: Path) -> None:
    """Bursts of lines often share a timestamp: a resume (which replays from
    a second before the cursor) skips exactly what was stored already."""
    from agent.drivers.base import RUNNING, TaskState
    from agent.logs import _DockerFollower

    store = LogStore(tmp_path)
    collector = LogCollector(store, {})
    st = TaskState("a1", "main", "docker", "c1", RUNNING, job="j")
    follower = _DockerFollower(collector, st)
    stamp = "2026-11-30T10:00:00.000001Z"
    frames = [f"{stamp} burst {i}\n".encode() for i in range(5)]
    cursor = follower._copy(iter(frames[:3]), "stdout", "main:stdout", (0, 0))
    assert cursor == (parse_docker_ts(stamp), 3)
    replay = [
        b"2026-11-30T09:59:59.9Z older\n",
        *frames,
        b"2026-11-30T10:00:01Z after\n2026-11-30T10:00:01Z partial",
    ]
    cursor = follower._copy(iter(replay), "stdout", "main:stdout", cursor)
    assert texts(store.tail("a1", None)) == [*(f"burst {i}" for i in range(5)), "after", "partial"]
    assert cursor == (parse_docker_ts("2026-11-30T10:00:01Z"), 2)


def test_logs_and_metrics_settings() -> None:
    from heroctld.config import ConfigError, load_logs_metrics

    logs, metrics = load_logs_metrics({}, {})
    assert (logs.retention, logs.max_bytes_per_alloc, metrics.interval) == (86400, 10 * 2**20, 10)
    logs, metrics = load_logs_metrics(
        {"logs": {"retention": "90m", "max-bytes-per-alloc": "512KiB"}, "metrics": {"interval": 5}},
        {"HEROCTL_METRICS_INTERVAL": "1"},
    )
    assert (logs.retention, logs.max_bytes_per_alloc, metrics.interval) == (5400, 512 * 1024, 1)
    for bad in (
        {"logs": {"retention": "soon"}},
        {"logs": {"colour": 1}},
        {"metrics": {"interval": "0"}},
        {"logs": {"max_bytes_per_alloc": "-1"}},
    ):
        with pytest.raises(ConfigError):
            load_logs_metrics(bad, {})
