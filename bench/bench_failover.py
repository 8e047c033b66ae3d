"""Failover: `kill -9` of the leader, repeatedly, under a light write load.

A writer in this process submits jobs open-loop (a new request every
`INTERVAL` seconds, whatever is still in flight) round-robin to the servers
that are up. Recovery time = from the kill to the first acknowledged write
that was *sent after* the kill (a write sent before it might have been
committed already and proves nothing). Each round then restarts the killed
server with its data and waits until all three are ready again.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import aiohttp

from bench.common import (
    auth_headers,
    job_body,
    load_average,
    log,
    median,
    metric,
    running_cluster,
)
from tests.support.cluster import Cluster, Server

INTERVAL = 0.01  # ~100 writes/s offered
RECOVERY_TIMEOUT = 15.0


class _Writer:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = {"Content-Type": "application/json", **headers}
        self.targets: list[Server] = []
        self.acks: list[tuple[float, float, str]] = []  # (sent, acked, server)
        self.failures: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count()
        self._stop = asyncio.Event()

    def _fail(self, key: str) -> None:
        self.failures[key] = self.failures.get(key, 0) + 1

    async def _one(self, session: aiohttp.ClientSession, server: Server, body: bytes) -> None:
        sent = time.monotonic()
        try:
            async with session.post(server.url + "/v1/jobs", data=body, headers=self.headers) as r:
                await r.read()
                if 200 <= r.status < 300:
                    self.acks.append((sent, time.monotonic(), server.name))
                else:
                    self._fail(str(r.status))
        except Exception as e:  # noqa: BLE001 - the killed server refuses; counted
            self._fail(type(e).__name__)

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=1000, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            rr = itertools.count()
            nxt = time.monotonic()
            while not self._stop.is_set():
                targets = self.targets
                if targets and len(self._tasks) < 2000:
                    i = next(self._ids)
                    server = targets[next(rr) % len(targets)]
                    task = asyncio.create_task(
                        self._one(session, server, job_body(f"f{i % 500}", i))
                    )
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                nxt += INTERVAL
                await asyncio.sleep(max(0.0, nxt - time.monotonic()))
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=12)

    def stop(self) -> None:
        self._stop.set()

    def first_ack_after(self, t: float) -> tuple[float, str] | None:
        best = None
        for sent, acked, name in self.acks:
            if sent >= t and (best is None or acked < best[0]):
                best = (acked, name)
        return best


async def _rounds(cluster: Cluster, rounds: int, details: dict[str, Any]) -> list[float]:
    writer = _Writer(auth_headers(cluster.servers[0]))
    writer.targets = list(cluster.servers)
    runner = asyncio.create_task(writer.run())
    recoveries: list[float] = []
    try:
        for r in range(rounds):
            await asyncio.to_thread(cluster.wait_ready, cluster.servers, 30.0)
            leader = await asyncio.to_thread(cluster.leader, 15.0)
            writer.targets = list(cluster.servers)
            await asyncio.sleep(1.0)  # steady load before the kill
            recent = time.monotonic() - 0.5
            if not any(a >= recent for _, a, _ in writer.acks[-200:]):
                raise RuntimeError("no writes acknowledged before the kill")
            survivors = [s for s in cluster.servers if s is not leader]
            writer.targets = survivors
            killed_at = time.monotonic()
            leader.kill()  # SIGKILL
            found = None
            while time.monotonic() - killed_at < RECOVERY_TIMEOUT:
                found = writer.first_ack_after(killed_at)
                if found:
                    break
                await asyncio.sleep(0.005)
            if found is None:
                recovery = RECOVERY_TIMEOUT
                log(f"failover: round {r + 1}: no write acknowledged in {RECOVERY_TIMEOUT:g}s")
            else:
                recovery = found[0] - killed_at
            recoveries.append(recovery)
            new_leader = await asyncio.to_thread(cluster.leader, 15.0, survivors)
            details["rounds"].append(
                {
                    "killed": leader.name,
                    "recovery_s": round(recovery, 3),
                    "acked_by": found[1] if found else None,
                    "new_leader": new_leader.name,
                }
            )
            log(
                f"failover: round {r + 1}: killed {leader.name}, write acknowledged after "
                f"{recovery:.3f}s, new leader {new_leader.name}"
            )
            t0 = time.monotonic()
            leader.start(peers=cluster.peers)
            await asyncio.to_thread(cluster.wait_ready, cluster.servers, 30.0)
            details["rounds"][-1]["rejoin_s"] = round(time.monotonic() - t0, 3)
    finally:
        writer.stop()
        try:
            await asyncio.wait_for(runner, 20)
        except (TimeoutError, asyncio.CancelledError):
            runner.cancel()
        details["writes_acknowledged"] = len(writer.acks)
        details["write_failures"] = writer.failures
    return recoveries


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 2 if quick else 10
    details: dict[str, Any] = {"load_average_before": load_average(), "rounds": []}
    with running_cluster(3, "failover") as cluster:
        recoveries = asyncio.run(_rounds(cluster, rounds, details))
    details["load_average_after"] = load_average()
    return {
        "rounds": metric(len(recoveries), ""),
        "recovery_median_s": metric(median(recoveries), "s", "<= 1.0"),
        "recovery_max_s": metric(max(recoveries), "s", "<= 2.0"),
        "_details": details,
    }
