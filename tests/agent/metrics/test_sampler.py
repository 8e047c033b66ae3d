"""The sampler with a fake driver passed in: running tasks summed per
allocation, the node's own figures, recorded in the store."""

from __future__ import annotations

from pathlib import Path

from agent.drivers.base import TaskSpec, TaskStats
from agent.metrics.sampler import MetricsSampler
from agent.metrics.store import MetricsStore
from tests.agent.fake_driver import FakeDriver
from tests.agent.metrics.support import T0, Clock


class BusyDriver(FakeDriver):
    """Each task uses 12.5 % of a core and 8 MiB."""

    def stats(self, alloc_id: str, task: str) -> TaskStats:
        return TaskStats(cpu_percent=12.5, memory_bytes=8 * 2**20)


async def test_sampler_records_running_tasks(tmp_path: Path) -> None:
    driver = BusyDriver("n1")
    for alloc_id, task in (("a1", "web"), ("a1", "side"), ("a2", "web")):
        driver.start(
            TaskSpec(alloc_id=alloc_id, job="shop", group="g", task=task, node="n1", image="x")
        )
    driver.exit("a2", "web", 0)
    clock = Clock()
    store = MetricsStore(tmp_path, clock=clock, interval=1)
    sampler = MetricsSampler(store, {"docker": driver}, data_dir=str(tmp_path), clock=clock)
    rnd = await sampler.sample(driver.list())
    assert set(rnd["allocs"]) == {"a1"}  # a2 does not run
    a1 = rnd["allocs"]["a1"]
    assert a1 == {"job": "shop", "group": "g", "cpu": 25.0, "memory": 16.0, "tasks": 2}
    assert rnd["node"]["memory_total"] > 0 and rnd["node"]["disk_total"] > 0
    clock.now += 1
    await sampler.sample(driver.list())
    q = store.query("memory", job="shop", start=T0 - 1, end=clock.now)
    assert len(q["series"][0]["points"]) == 2
    assert store.current()["allocs"]["a1"]["tasks"] == 2
