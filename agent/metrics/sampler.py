"""Sampling: what this node and its running allocations use, every interval.

Apart from the store because it does the blocking I/O (/proc, the disk,
in the executor; one driver ``stats()`` call per running task, in parallel,
through :class:`agent.drivers.calls.DriverCalls`, so an engine that hangs
costs a round its tasks' figures, never the node's) and the arithmetic from task to allocation (cpu and memory
summed over the allocation's tasks); the store only keeps what it is given.

The node's ingress figures come from a callable the agent passes in
(``ingress_stats``: the access-log reader's last snapshot, which the agent
refreshes on its own schedule): the sampler only reads it, turns its
cumulative counters into rates (:mod:`agent.metrics.ingress`) and records
both. It is called on the loop, so it must not block (returning a cached
snapshot is what it is for); when it raises, that round has no ingress
figures and the next one measures its rates over both intervals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from typing import Any

from agent.drivers.base import Driver, DriverError, TaskState
from agent.drivers.calls import DriverCalls
from agent.metrics.ingress import IngressRates
from agent.metrics.store import MetricsStore
from agent.node import CpuSampler, disk_mb, memory_mb

__all__ = ["IngressStats", "MetricsSampler", "node_stats"]

# host -> the access-log reader's numbers (agent.ingress.access_log.AccessLogReader.snapshot)
IngressStats = Callable[[], Mapping[str, Mapping[str, Any]]]

log = logging.getLogger("heroctl.agent.metrics")


def node_stats(data_dir: str, cpu: CpuSampler) -> dict[str, float]:
    """This machine now: cpu busy % (since the previous call), memory and
    disk (of the data dir's filesystem) used and total in MB."""
    mem_total, mem_used = memory_mb()
    disk_total, disk_used = disk_mb(data_dir)
    return {
        "cpu": round(cpu.busy_fraction() * 100.0, 2),
        "memory": float(mem_used),
        "memory_total": float(mem_total),
        "disk": float(disk_used),
        "disk_total": float(disk_total),
    }


class MetricsSampler:
    """Samples the node, the running tasks and (given ``ingress_stats``, a
    constructor argument or an attribute set later) the node's ingress into
    ``store`` every ``store.interval`` seconds (see :meth:`run`)."""

    def __init__(
        self,
        store: MetricsStore,
        drivers: Mapping[str, Driver],
        *,
        data_dir: str,
        executor: Executor | None = None,
        calls: DriverCalls | None = None,
        clock: Callable[[], float] = time.time,
        ingress_stats: IngressStats | None = None,
    ) -> None:
        self.store = store
        self.drivers = dict(drivers)
        self.data_dir = data_dir
        self.executor = executor
        self.calls = calls if calls is not None else DriverCalls(executor)
        self.clock = clock
        self.ingress_stats = ingress_stats
        self._ingress_rates = IngressRates()
        self._cpu = CpuSampler()
        self._cpu.busy_fraction()  # the first reading only sets the baseline

    async def _task_stats(self, st: TaskState) -> tuple[TaskState, float, int] | None:
        driver = self.drivers.get(st.driver)
        if driver is None:
            return None
        try:
            stats = await self.calls.stats(driver, st.alloc_id, st.task)
        except DriverError as exc:  # exited since it was listed, engine away...
            log.debug("metrics: stats of %s/%s failed: %s", st.alloc_id, st.task, exc)
            return None
        return st, float(stats.cpu_percent), int(stats.memory_bytes)

    async def sample(self, states: Iterable[TaskState]) -> dict[str, Any]:
        """One round: every running task's stats (in parallel) and the
        node's, recorded; returns what was recorded."""
        loop = asyncio.get_running_loop()
        running = [st for st in states if st.running and st.alloc_id]
        results = await asyncio.gather(*(self._task_stats(st) for st in running))
        node = await loop.run_in_executor(self.executor, node_stats, self.data_dir, self._cpu)
        allocs: dict[str, dict[str, Any]] = {}
        for result in results:
            if result is None:
                continue
            st, cpu, mem = result
            doc = allocs.setdefault(
                st.alloc_id,
                {"job": st.job, "group": st.group, "cpu": 0.0, "memory": 0.0, "tasks": 0},
            )
            doc["cpu"] = round(doc["cpu"] + cpu, 2)
            doc["memory"] = round(doc["memory"] + mem / 2**20, 2)
            doc["tasks"] += 1
        stats = self._read_ingress()
        t = round(self.clock(), 3)
        history, current = (None, None) if stats is None else self._ingress_rates.update(t, stats)
        await loop.run_in_executor(
            self.executor, self.store.record, t, node, allocs, history, current
        )
        return {"t": t, "node": node, "allocs": allocs, "ingress": current}

    def _read_ingress(self) -> Mapping[str, Mapping[str, Any]] | None:
        """The ingress snapshot of this round; None without a source or when it failed."""
        if self.ingress_stats is None:
            return None
        try:
            return self.ingress_stats()
        except Exception:  # noqa: BLE001 - a round without ingress figures, not without metrics
            log.exception("metrics: reading the ingress figures failed")
            return None

    async def run(self, states: Callable[[], Iterable[TaskState]]) -> None:
        """Sample every interval, on multiples of it (so nodes sample together)."""
        interval = max(0.05, self.store.interval)
        while True:
            now = self.clock()
            await asyncio.sleep(interval - (now % interval))
            try:
                await self.sample(list(states()))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("metrics: sampling failed")
