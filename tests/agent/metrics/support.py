"""A fake clock and rounds of samples for the metrics tests."""

from __future__ import annotations

from agent.metrics.store import MetricsStore

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
