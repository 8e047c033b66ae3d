"""One metric series in memory: raw samples and downsampled tiers.

Apart from the store because it is the memory layout and the arithmetic:
points are kept column-wise in float arrays (a node samples every 10 s for
weeks, for every allocation), and each sample is folded into the 1-minute
and 1-hour averages as it arrives (a bucket is closed when a sample of the
next one comes). The raw samples are kept for 24 h, 1-minute averages for
7 days and 1-hour averages for 30 days. :meth:`Series.source` picks the
finest tier that still covers a query's start.

A NaN value means "no figure this round" (an ingress host's latency with no
upstream request): the averages count, field by field, only the rounds that
had one, and a bucket with none keeps NaN, which queries skip.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Mapping
from typing import Any

from domain.metric_series import Point

__all__ = ["RAW_RETENTION", "TIERS", "Series"]

RAW_RETENTION = 24 * 3600.0
# (step, retention) of the downsampled tiers, finest first.
TIERS: tuple[tuple[float, float], ...] = ((60.0, 7 * 24 * 3600.0), (3600.0, 30 * 24 * 3600.0))


class _Columns:
    """Points ``(t, values)`` kept as one float array per column (24 bytes a
    point for two fields, not ~190 as tuples), oldest first; the front is
    dropped by moving ``head`` and compacting now and then."""

    __slots__ = ("t", "v", "head")

    def __init__(self, width: int) -> None:
        self.t = array("d")
        self.v = [array("d") for _ in range(width)]
        self.head = 0

    def __len__(self) -> int:
        return len(self.t) - self.head

    def __bool__(self) -> bool:
        return len(self.t) > self.head

    def __getitem__(self, i: int) -> Point:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        j = self.head + i
        return self.t[j], tuple(col[j] for col in self.v)

    def append(self, t: float, values: tuple[float, ...]) -> None:
        self.t.append(t)
        for col, x in zip(self.v, values, strict=False):
            col.append(x)

    def drop_before(self, before: float) -> None:
        t, h, n = self.t, self.head, len(self.t)
        while h < n and t[h] < before:
            h += 1
        self.head = h
        if h > 256 and h * 2 > n:
            self.t = self.t[h:]
            self.v = [col[h:] for col in self.v]
            self.head = 0

    def window(self, index: int, start: float, end: float) -> tuple[list[float], list[float]]:
        """(times, values of column ``index``) with start <= t <= end."""
        lo = bisect.bisect_left(self.t, start, self.head)
        hi = bisect.bisect_right(self.t, end, lo)
        return self.t[lo:hi].tolist(), self.v[index][lo:hi].tolist()

    def points(self) -> list[Point]:
        h = self.head
        cols = [col[h:] for col in self.v]
        return [(t, tuple(c[i] for c in cols)) for i, t in enumerate(self.t[h:])]


class Series:
    __slots__ = ("key", "labels", "fields", "raw", "tiers", "acc")

    def __init__(self, key: str, labels: dict[str, str], fields: tuple[str, ...]) -> None:
        self.key = key
        self.labels = labels
        self.fields = fields
        self.raw = _Columns(len(fields))
        self.tiers = [_Columns(len(fields)) for _ in TIERS]
        # per tier: [bucket start, sums, rounds, figures per field] of the bucket being
        # filled (figures: the rounds with a value that was not NaN)
        self.acc: list[list[Any] | None] = [None for _ in TIERS]

    @property
    def last(self) -> float | None:
        return self.raw[-1][0] if self.raw else None

    def add(self, t: float, values: tuple[float, ...]) -> bool:
        if self.raw and t <= self.raw.t[-1]:
            return False  # already have it (a journal replayed over a snapshot)
        self.raw.append(t, values)
        self.raw.drop_before(t - RAW_RETENTION)
        for i, (step, keep) in enumerate(TIERS):
            bucket = math.floor(t / step) * step
            acc = self.acc[i]
            if acc is not None and acc[0] != bucket:
                tier = self.tiers[i]
                tier.append(acc[0], tuple(_mean(acc, j) for j in range(len(acc[1]))))
                tier.drop_before(t - keep)
                acc = None
            if acc is None:
                self.acc[i] = [
                    bucket,
                    [0.0 if v != v else v for v in values],
                    1,
                    [0 if v != v else 1 for v in values],
                ]
            else:
                sums, figures = acc[1], acc[3]
                for j, v in enumerate(values[: len(sums)]):
                    if v == v:  # not NaN
                        sums[j] += v
                        figures[j] += 1
                acc[2] += 1
        return True

    def prune(self, now: float) -> None:
        self.raw.drop_before(now - RAW_RETENTION)
        for i, (_, keep) in enumerate(TIERS):
            self.tiers[i].drop_before(now - keep)
            acc = self.acc[i]
            if acc is not None and acc[0] < now - keep:
                self.acc[i] = None

    @property
    def empty(self) -> bool:
        return not self.raw and not any(self.tiers) and not any(self.acc)

    def source(
        self, index: int, start: float, end: float, now: float, interval: float
    ) -> tuple[list[float], list[float], float]:
        """(times, values) of field ``index`` between ``start`` and ``end``
        from the finest tier that covers ``start``, and that tier's step."""
        if start >= now - RAW_RETENTION:
            return (*self.raw.window(index, start, end), interval)
        for i, (step, keep) in enumerate(TIERS):
            if start >= now - keep or i == len(TIERS) - 1:
                times, values = self.tiers[i].window(index, start, end)
                acc = self.acc[i]
                if acc is not None and start <= acc[0] <= end:
                    times.append(acc[0])
                    values.append(_mean(acc, index))
                return times, values, step
        raise AssertionError("unreachable")

    def dump(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "fields": list(self.fields),
            "raw": [[t, *v] for t, v in self.raw.points()],
            "tiers": [[[t, *v] for t, v in tier.points()] for tier in self.tiers],
            "acc": self.acc,
        }

    @classmethod
    def load(cls, key: str, doc: Mapping[str, Any]) -> Series:
        s = cls(key, dict(doc.get("labels") or {}), tuple(doc["fields"]))
        for p in doc.get("raw") or []:
            s.raw.append(p[0], tuple(p[1:]))
        for i, tier in enumerate((doc.get("tiers") or [])[: len(TIERS)]):
            for p in tier:
                s.tiers[i].append(p[0], tuple(p[1:]))
        for i, acc in enumerate((doc.get("acc") or [])[: len(TIERS)]):
            if acc and len(acc) == 3:  # written before NaN was a value: every round counted
                acc = [*acc, [acc[2]] * len(acc[1])]
            s.acc[i] = [acc[0], list(acc[1]), acc[2], list(acc[3])] if acc else None
        return s


def _mean(acc: list[Any], index: int) -> float:
    """The average of field ``index`` in a bucket being filled (NaN: no figure)."""
    figures = acc[3][index]
    return acc[1][index] / figures if figures else math.nan
