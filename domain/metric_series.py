"""Metric series as the API and the agent both see them: which fields a node
and an allocation have, and how points fold into step-wide buckets (aligned on
multiples of the step, so series from several nodes line up and can be summed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# cpu: % of all the node's cores (0-100); memory, disk: MB.
NODE_FIELDS = ("cpu", "memory", "memory_total", "disk", "disk_total")
# cpu: % of one core (200 = two cores busy), summed over the tasks; memory: MB.
ALLOC_FIELDS = ("cpu", "memory")
MAX_POINTS = 2000  # per series in one answer: a longer window gets a wider step

Point = tuple[float, tuple[float, ...]]


def bucketize(points: Iterable[Point], index: int, start: float, end: float, step: float):
    """``[[t, avg], ...]`` of field ``index`` in ``step``-wide buckets
    (aligned on multiples of ``step``) between ``start`` and ``end``."""
    sums: dict[float, list[float]] = {}
    for t, values in points:
        if t < start or t > end or index >= len(values):
            continue
        bucket = math.floor(t / step) * step
        acc = sums.setdefault(bucket, [0.0, 0])
        acc[0] += values[index]
        acc[1] += 1
    return [[b, round(s / n, 3)] for b, (s, n) in sorted(sums.items())]


def bucketize_columns(times: list[float], values: list[float], step: float) -> list[list[float]]:
    """``[[t, avg], ...]`` in ``step``-wide buckets aligned on multiples of ``step``."""
    out: list[list[float]] = []
    bucket = total = 0.0
    n = 0
    for t, v in zip(times, values, strict=True):
        b = math.floor(t / step) * step
        if n and b != bucket:
            out.append([bucket, round(total / n, 3)])
            n, total = 0, 0.0
        bucket = b
        total += v
        n += 1
    if n:
        out.append([bucket, round(total / n, 3)])
    return out


def choose_step(start: float, end: float, source_step: float, step: float | None) -> float:
    """The step of an answer: at least the source's, at most MAX_POINTS points."""
    least = max(source_step, (end - start) / MAX_POINTS)
    if step is None or step < least:
        step = least
    if source_step > 0:
        step = math.ceil(step / source_step - 1e-9) * source_step
    return float(step)
