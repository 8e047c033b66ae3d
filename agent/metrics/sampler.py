"""Sampling: what this node and its running allocations use, every interval.

Apart from the store because it does the blocking I/O (/proc, the disk,
in the executor; one driver ``stats()`` call per running task, in parallel,
through :class:`agent.drivers.calls.DriverCalls`, so an engine that hangs
costs a round its tasks' figures, never the node's) and the arithmetic from task to allocation (cpu and memory
summed over the allocation's tasks); the store only keeps what it is given.
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
from agent.metrics.store import MetricsStore
from agent.node import CpuSampler, disk_mb, memory_mb

__all__ = ["MetricsSampler", "node_stats"]

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
    """Samples the node and the running tasks into ``store`` every
    ``store.interval`` seconds (see :meth:`run`)."""

    def __init__(
        self,
        store: MetricsStore,
        drivers: Mapping[str, Driver],
        *,
        data_dir: str,
        executor: Executor | None = None,
        calls: DriverCalls | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.drivers = dict(drivers)
        self.data_dir = data_dir
        self.executor = executor
        self.calls = calls if calls is not None else DriverCalls(executor)
        self.clock = clock
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
        t = round(self.clock(), 3)
        await loop.run_in_executor(self.executor, self.store.record, t, node, allocs)
        return {"t": t, "node": node, "allocs": allocs}

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
