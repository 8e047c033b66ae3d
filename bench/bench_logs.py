"""SSE log followers: 20 concurrent followers of a job printing 1,000 lines/s.

Target (issue 5): no follower loses a line.

How it is measured. A two-server cluster with agents (a real Docker
engine, rate limits lifted). One job of two allocations on the two nodes
(``distinct_hosts``), each container printing numbered lines (``n <i>``) in
bursts of 30 every 50 ms (plus the time a burst takes): ~560 lines/s each,
~1,100 lines/s for the job (less on a loaded machine: the rate is measured).
20 followers open ``GET /v1/logs?job=...&stream=true``, half on each server,
so every follower gets one allocation from its server's own agent and the
other relayed from the other server. They run in client processes (spawn:
no GIL shared with the driver) and check, per allocation, that the numbers
they receive go up by exactly one (a jump is lost lines, a repeat a
duplicate). After the measured window the driver reads the last line each
allocation stored, and every follower must reach it (a follower that stalls
counts what it never got as lost). Latency: arrival time minus the line's
timestamp (docker's, when the container wrote it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import queue
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import BENCH_ENV, CpuWatch, load_average, log, metric, percentile, server_pids
from tests.support.cluster import Cluster, wait_until

IMAGE = "heroctl-test/busybox:latest"
FOLLOWERS = 20
CLIENT_PROCS = 2
JOB = "bench-printer"
BURST, PAUSE_US = 30, 50_000  # lines per burst, pause between bursts: ~560 lines/s
PRINTER = (
    f"i=0; while true; do seq $i $((i+{BURST - 1})) | sed 's/^/n /'; "
    f"i=$((i+{BURST})); usleep {PAUSE_US}; done"
)


def _job() -> dict[str, Any]:
    return {
        "name": JOB,
        "type": "service",
        "groups": [
            {
                "name": "g",
                "count": 2,
                "constraints": [{"operator": "distinct_hosts"}],
                "tasks": [
                    {
                        "name": "printer",
                        "driver": "docker",
                        "image": IMAGE,
                        "command": ["sh", "-c", PRINTER],
                        "resources": {"cpu": 500, "memory": 64},
                        "kill_timeout": "1s",
                    }
                ],
            }
        ],
    }


# --- client processes ------------------------------------------------------------------------


_BLANK_LINE = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class _Track:
    """What one follower saw of one allocation."""

    __slots__ = ("first", "last", "count", "lost", "dups")

    def __init__(self) -> None:
        self.first: int | None = None
        self.last: int | None = None
        self.count = 0
        self.lost = 0
        self.dups = 0

    def see(self, n: int) -> None:
        self.count += 1
        if self.last is None:
            self.first = self.last = n
        elif n == self.last + 1:
            self.last = n
        elif n <= self.last:
            self.dups += 1
        else:
            self.lost += n - self.last - 1
            self.last = n


async def _follow(
    session: Any,
    url: str,
    headers: dict[str, str],
    tracks: dict[str, _Track],
    latencies: list[float],
    stats: dict[str, int],
) -> None:
    import aiohttp

    async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=None)) as r:
        if r.status != 200:
            raise RuntimeError(f"follower got {r.status}: {(await r.text())[:200]}")
        buf = b""
        async for chunk in r.content.iter_any():
            buf += chunk
            # events end with a blank line: our frames use \n, the `: ping`
            # comments of aiohttp-sse \r\n
            *events, buf = _BLANK_LINE.split(buf)
            now = time.time()
            for ev in events:
                if ev.startswith(b"event: log\ndata: "):
                    d = json.loads(ev[17:])
                    line = d["line"]
                    if line.startswith("n "):
                        tracks.setdefault(d["alloc"], _Track()).see(int(line[2:]))
                        stats["events"] += 1
                        if stats["events"] % 20 == 0:
                            latencies.append(now - d["us"] / 1e6)
                elif ev.startswith(b"event: "):
                    stats["other_events"] += 1


async def _client(urls: list[str], headers: dict[str, str], control: Any, out: Any) -> None:
    import aiohttp

    tracks = [dict[str, _Track]() for _ in urls]
    latencies: list[float] = []
    stats = {"events": 0, "other_events": 0}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [
            asyncio.create_task(_follow(session, u, headers, tracks[i], latencies, stats))
            for i, u in enumerate(urls)
        ]
        out.put(("started", len(urls)))
        loop = asyncio.get_running_loop()
        targets: dict[str, int] = await loop.run_in_executor(None, control.get)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(t.done() for t in tasks):
                break
            reached = all(
                (t.get(a) is not None and (t[a].last or -1) >= end)
                for t in tracks
                for a, end in targets.items()
            )
            if reached:
                break
            await asyncio.sleep(0.05)
        errors = [repr(t.exception()) for t in tasks if t.done() and t.exception()]
        for t in tasks:
            t.cancel()
    report = []
    for t in tracks:
        row = {}
        for a, end in targets.items():
            tr = t.get(a) or _Track()
            missing_tail = max(0, end - (tr.last if tr.last is not None else end))
            row[a] = {
                "first": tr.first,
                "last": tr.last,
                "count": tr.count,
                "lost": tr.lost + missing_tail + (0 if tr.last is not None else 1),
                "dups": tr.dups,
            }
        report.append(row)
    out.put(("done", report, latencies, stats, errors))


def _child(urls: list[str], headers: dict[str, str], control: Any, out: Any) -> None:
    try:
        asyncio.run(_client(urls, headers, control, out))
    except BaseException as e:  # noqa: BLE001 - reported to the driver
        out.put(("error", repr(e)))


# --- driver ------------------------------------------------------------------------------------------


def _last_number(server: Any, alloc_id: str) -> int:
    lines = server.get(f"/v1/logs/{alloc_id}?lines=1&type=stdout").body
    return int(lines[-1]["line"][2:])


def run(quick: bool = False) -> dict[str, Any]:
    duration = 10.0 if quick else 30.0
    root = Path(tempfile.mkdtemp(prefix="heroctl-bench-logs-"))
    cluster = Cluster(root, 2, env=dict(BENCH_ENV), agent=True, agent_cpu=4000, agent_memory=2048)
    ok = False
    try:
        log(f"logs: starting a 2-server cluster with agents in {root}")
        cluster.start()
        a, b = cluster.servers
        wait_until(
            lambda: len([n for n in a.get("/v1/nodes").body if n["status"] == "ready"]) == 2,
            60,
            message="two ready nodes",
        )
        r = a.post("/v1/jobs", _job())
        assert r.status in (200, 201), r.body

        def placed() -> list[dict[str, Any]] | None:
            allocs = [
                x for x in a.get(f"/v1/allocations?job={JOB}").body if x["status"] == "running"
            ]
            return allocs if len(allocs) == 2 else None

        allocs = wait_until(placed, 90, 0.2, message="two running printers")
        ids = [x["id"] for x in allocs]
        wait_until(lambda: all(_last_number(a, i) > 100 for i in ids), 30, message="output")
        headers = {"Authorization": f"Bearer {cluster.token}"}
        urls = [
            f"{(a if i % 2 == 0 else b).url}/v1/logs?job={JOB}&stream=true"
            for i in range(FOLLOWERS)
        ]
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        controls = [ctx.Queue() for _ in range(CLIENT_PROCS)]
        share = [urls[i::CLIENT_PROCS] for i in range(CLIENT_PROCS)]
        children = [
            ctx.Process(target=_child, args=(share[i], headers, controls[i], out))
            for i in range(CLIENT_PROCS)
        ]
        for c in children:
            c.start()
        started = 0
        while started < FOLLOWERS:
            kind, *rest = out.get(timeout=60)
            if kind == "error":
                raise RuntimeError(f"a client failed: {rest[0]}")
            started += rest[0]
        begin_numbers = {i: _last_number(a, i) for i in ids}
        watch = CpuWatch(server_pids(cluster))
        watch.begin()
        t0 = time.monotonic()
        time.sleep(duration)
        end_numbers = {i: _last_number(a, i) for i in ids}
        elapsed = time.monotonic() - t0
        cpu = watch.end()
        for q in controls:
            q.put(end_numbers)
        reports: list[dict[str, Any]] = []
        latencies: list[float] = []
        events = other_events = 0
        errors: list[str] = []
        for _ in children:
            try:
                kind, *rest = out.get(timeout=90)
            except queue.Empty:
                raise RuntimeError("a client did not report") from None
            if kind == "error":
                raise RuntimeError(f"a client failed: {rest[0]}")
            reports.extend(rest[0])
            latencies.extend(rest[1])
            events += rest[2]["events"]
            other_events += rest[2]["other_events"]
            errors.extend(rest[3])
        for c in children:
            c.join(10)
        store_gaps = {}
        for i in ids:  # what each node stored (the source every follower reads)
            stored = [
                int(d["line"][2:])
                for d in a.get(f"/v1/logs/{i}?lines=all&type=stdout", timeout=60).body
            ]
            store_gaps[i] = [
                (x, y) for x, y in zip(stored, stored[1:], strict=False) if y != x + 1
            ][:20]
        produced = sum(end_numbers[i] - begin_numbers[i] for i in ids)
        rate = produced / elapsed
        lost = sum(row[i]["lost"] for row in reports for i in ids)
        dups = sum(row[i]["dups"] for row in reports for i in ids)
        log(
            f"logs: {FOLLOWERS} followers, job printing {rate:.0f} lines/s for {elapsed:.0f}s: "
            f"{events} lines delivered, {lost} lost, {dups} duplicated, latency p50 "
            f"{percentile(latencies, 50) * 1000:.0f} ms p99 {percentile(latencies, 99) * 1000:.0f} ms"
        )
        ok = True
        return {
            "followers": FOLLOWERS,
            "job_lines_per_second": metric(rate, "lines/s", ">= 1000"),
            "lines_lost": metric(lost, "lines", "<= 0"),
            "lines_duplicated": metric(dups, "lines", "<= 0"),
            "delivered_per_second": metric(events / max(elapsed, 1e-9), "lines/s"),
            "latency_p50_ms": metric(percentile(latencies, 50) * 1000, "ms"),
            "latency_p99_ms": metric(percentile(latencies, 99) * 1000, "ms"),
            "server_cpu": cpu,
            "_errors": errors[:5],
            "_other_events": other_events,
            "_store_gaps": store_gaps,
            "_followers": reports,
            "_load_average": load_average(),
        }
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for s in cluster.servers:
                log(f"logs: {s.name} log tail:\n    " + "\n    ".join(s.log().splitlines()[-15:]))
            log(f"logs: failed; logs kept in {root}")


if __name__ == "__main__":
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
