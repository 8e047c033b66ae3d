"""The metrics store (tiers, downsampling, retention, restart) and the
sampler with a fake driver passed in. Time is injected: no sleeps."""

from __future__ import annotations

from pathlib import Path

from agent.drivers.base import TaskSpec, TaskStats
from agent.metrics import JOURNAL, SNAPSHOT, MetricsSampler, MetricsStore
from domain.metric_series import bucketize, choose_step
from tests.agent.fake_driver import FakeDriver

T0 = 1_800_000_000.0  # a multiple of 3600


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def node(cpu: float, memory: float = 100) -> dict[str, float]:
    return {"cpu": cpu, "memory": memory, "memory_total": 1000, "disk": 5, "disk_total": 50}


def alloc(cpu: float, memory: float, job: str = "web") -> dict[str, object]:
    return {"job": job, "group": "g", "cpu": cpu, "memory": memory, "tasks": 1}


def fill(store: MetricsStore, clock: Clock, seconds: float, step: float = 10) -> None:
    """Samples every `step` seconds for `seconds`: node cpu = minute of the
    sample, alloc memory = 10 x that."""
    end = clock.now + seconds
    while clock.now < end:
        minute = (clock.now - T0) // 60
        store.record(clock.now, node(minute), {"a1": alloc(1, minute * 10)})
        clock.now += step


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


def test_bucketize_and_step_choice() -> None:
    points = [(0.0, (1.0,)), (5.0, (3.0,)), (10.0, (5.0,)), (25.0, (7.0,))]
    assert bucketize(points, 0, 0, 30, 10) == [[0, 2.0], [10, 5.0], [20, 7.0]]
    assert bucketize(points, 0, 6, 30, 10) == [[10, 5.0], [20, 7.0]]
    assert choose_step(0, 3600, 10, None) == 10
    assert choose_step(0, 3600, 10, 25) == 30
    assert choose_step(0, 7 * 86400, 60, None) == 360  # at most 2000 points (302.4 -> 360)


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
