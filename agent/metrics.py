"""Resource metrics of this node and of its allocations, with history.

The agent samples every ``interval`` seconds (10 by default): the node
(cpu busy % of all cores, memory and disk used and total, MB) and every
running allocation (cpu % of one core and memory MB, summed over its tasks,
from the drivers' ``stats()``). :class:`MetricsStore` keeps:

* the raw samples for 24 h;
* 1-minute averages for 7 days and 1-hour averages for 30 days, folded in
  as samples arrive (a bucket is closed when a sample of the next one comes);

and survives an agent restart: every sampling round is appended to
``journal.jsonl`` and the whole store is written to ``snapshot.msgpack``
every ``compact_interval`` seconds (and on close), after which the journal
starts over. Loading reads the snapshot and replays the journal (a torn
last line is skipped; rounds already in the snapshot are ignored).

Queries pick the finest tier that still covers the window's start and
average the points into ``step``-wide buckets aligned on multiples of the
step, so series from several nodes line up and can be summed.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import math
import os
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import msgpack

from agent.drivers.base import Driver, DriverError, TaskState
from agent.node import CpuSampler, disk_mb, memory_mb
from domain.metric_series import (
    ALLOC_FIELDS,
    NODE_FIELDS,
    Point,
    bucketize_columns,
    choose_step,
)

__all__ = [
    "DEFAULT_INTERVAL",
    "MetricsSampler",
    "MetricsStore",
    "node_stats",
]

log = logging.getLogger("heroctl.agent.metrics")

DEFAULT_INTERVAL = 10.0
RAW_RETENTION = 24 * 3600.0
# (step, retention) of the downsampled tiers, finest first.
TIERS: tuple[tuple[float, float], ...] = ((60.0, 7 * 24 * 3600.0), (3600.0, 30 * 24 * 3600.0))
NODE = "node"
SNAPSHOT = "snapshot.msgpack"
JOURNAL = "journal.jsonl"


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


class _Series:
    __slots__ = ("key", "labels", "fields", "raw", "tiers", "acc")

    def __init__(self, key: str, labels: dict[str, str], fields: tuple[str, ...]) -> None:
        self.key = key
        self.labels = labels
        self.fields = fields
        self.raw = _Columns(len(fields))
        self.tiers = [_Columns(len(fields)) for _ in TIERS]
        # per tier: [bucket start, sums, count] of the bucket being filled
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
                tier.append(acc[0], tuple(s / acc[2] for s in acc[1]))
                tier.drop_before(t - keep)
                acc = None
            if acc is None:
                self.acc[i] = [bucket, list(values), 1]
            else:
                acc[1] = [a + b for a, b in zip(acc[1], values, strict=False)]
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
                    values.append(acc[1][index] / acc[2])
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
    def load(cls, key: str, doc: Mapping[str, Any]) -> _Series:
        s = cls(key, dict(doc.get("labels") or {}), tuple(doc["fields"]))
        for p in doc.get("raw") or []:
            s.raw.append(p[0], tuple(p[1:]))
        for i, tier in enumerate((doc.get("tiers") or [])[: len(TIERS)]):
            for p in tier:
                s.tiers[i].append(p[0], tuple(p[1:]))
        for i, acc in enumerate((doc.get("acc") or [])[: len(TIERS)]):
            s.acc[i] = list(acc) if acc else None
        return s


class MetricsStore:
    """History of this node's samples (see the module doc). Thread-safe:
    the sampler records from an executor, queries come from the loop."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None,
        *,
        interval: float = DEFAULT_INTERVAL,
        compact_interval: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dir = Path(directory) if directory is not None else None
        self.interval = float(interval)
        self.compact_interval = compact_interval
        self.clock = clock
        self.series: dict[str, _Series] = {}
        self.latest: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._journal: Any = None
        self._compacted = clock()
        self.rounds = 0
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._load()

    # --- persistence ---------------------------------------------------------------------

    def _load(self) -> None:
        assert self.dir is not None
        snap = self.dir / SNAPSHOT
        with contextlib.suppress(FileNotFoundError):
            try:
                doc = msgpack.unpackb(snap.read_bytes(), raw=False, strict_map_key=False)
                for key, sdoc in (doc.get("series") or {}).items():
                    self.series[key] = _Series.load(key, sdoc)
                self.latest = doc.get("latest") or {}
            except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
                log.warning("metrics: ignoring unreadable snapshot %s: %s", snap, exc)
                self.series.clear()
        replayed = 0
        with contextlib.suppress(FileNotFoundError), open(self.dir / JOURNAL, "rb") as f:
            for raw in f:
                try:
                    rnd = json.loads(raw)
                except ValueError:
                    continue  # a torn last line
                self._apply(rnd)
                replayed += 1
        now = self.clock()
        for s in self.series.values():
            s.prune(now)
        if replayed:
            log.info("metrics: replayed %d sampling rounds from the journal", replayed)

    def compact(self) -> None:
        """Write the whole store to the snapshot and start a new journal."""
        if self.dir is None:
            return
        with self._lock:
            now = self.clock()
            for key, series in list(self.series.items()):
                series.prune(now)
                if series.empty:
                    del self.series[key]
            doc = {
                "version": 1,
                "interval": self.interval,
                "series": {k: s.dump() for k, s in self.series.items()},
                "latest": self.latest,
            }
            data = msgpack.packb(doc, use_bin_type=True)
            tmp = self.dir / (SNAPSHOT + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.dir / SNAPSHOT)
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            with open(self.dir / JOURNAL, "wb"):
                pass  # truncated: the snapshot holds it all
            self._compacted = now

    def close(self) -> None:
        with self._lock:
            try:
                self.compact()
            except OSError as exc:
                log.warning("metrics: cannot write the snapshot: %s", exc)
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    # --- recording -------------------------------------------------------------------------

    def _apply(self, rnd: Mapping[str, Any]) -> None:
        t = float(rnd["t"])
        node = rnd.get("node")
        if node:
            s = self.series.get(NODE)
            if s is None:
                s = self.series[NODE] = _Series(NODE, {}, NODE_FIELDS)
            s.add(t, tuple(float(node.get(f) or 0) for f in NODE_FIELDS))
        for alloc_id, doc in (rnd.get("allocs") or {}).items():
            key = f"alloc:{alloc_id}"
            s = self.series.get(key)
            labels = {
                "alloc": alloc_id,
                "job": str(doc.get("job", "")),
                "group": str(doc.get("group", "")),
            }
            if s is None:
                s = self.series[key] = _Series(key, labels, ALLOC_FIELDS)
            s.add(t, tuple(float(doc.get(f) or 0) for f in ALLOC_FIELDS))
        self.latest = {
            "t": t,
            "node": dict(node or {}),
            "allocs": {k: dict(v) for k, v in (rnd.get("allocs") or {}).items()},
        }

    def record(
        self, t: float, node: Mapping[str, float] | None, allocs: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """One sampling round: node values by NODE_FIELDS, and per allocation
        ``{"job", "group", "cpu", "memory", "tasks"}``."""
        rnd = {"t": t, "node": dict(node or {}), "allocs": {k: dict(v) for k, v in allocs.items()}}
        with self._lock:
            self._apply(rnd)
            self.rounds += 1
            if self.rounds % 60 == 0:
                now = self.clock()
                for s in self.series.values():
                    s.prune(now)
            if self.dir is None:
                return
            try:
                if self._journal is None:
                    self._journal = open(self.dir / JOURNAL, "ab")  # noqa: SIM115 - kept open
                self._journal.write(json.dumps(rnd, separators=(",", ":")).encode() + b"\n")
                self._journal.flush()
                if self.clock() - self._compacted >= self.compact_interval:
                    self.compact()
            except OSError as exc:
                log.warning("metrics: cannot write to %s: %s", self.dir, exc)

    # --- reading -----------------------------------------------------------------------------

    def query(
        self,
        metric: str,
        *,
        alloc: str | None = None,
        job: str | None = None,
        start: float,
        end: float,
        step: float | None = None,
    ) -> dict[str, Any]:
        """``{"step", "series": [{"labels", "points": [[t, v], ...]}]}``: the
        node's series, or one allocation's, or every allocation of a job."""
        with self._lock:
            if alloc is not None:
                chosen = [s for k, s in self.series.items() if k == f"alloc:{alloc}"]
            elif job is not None:
                chosen = [
                    s
                    for k, s in sorted(self.series.items())
                    if k.startswith("alloc:") and s.labels.get("job") == job
                ]
            else:
                chosen = [s for k, s in self.series.items() if k == NODE]
            now = self.clock()
            out = []
            answer_step: float | None = None
            for s in chosen:
                if metric not in s.fields:
                    continue
                times, found, source_step = s.source(
                    s.fields.index(metric), start, end, now, self.interval
                )
                answer_step = choose_step(start, end, source_step, step)
                values = bucketize_columns(times, found, answer_step)
                if values:
                    out.append({"labels": dict(s.labels), "points": values})
        if answer_step is None:
            answer_step = choose_step(start, end, self.interval, step)
        return {"step": answer_step, "series": out}

    def current(self) -> dict[str, Any]:
        """The last sampling round: ``{"t", "node", "allocs"}``."""
        with self._lock:
            return json.loads(json.dumps(self.latest)) if self.latest else {}


# --- sampling ----------------------------------------------------------------------------------


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.drivers = dict(drivers)
        self.data_dir = data_dir
        self.executor = executor
        self.clock = clock
        self._cpu = CpuSampler()
        self._cpu.busy_fraction()  # the first reading only sets the baseline

    def _task_stats(self, st: TaskState) -> tuple[TaskState, float, int] | None:
        driver = self.drivers.get(st.driver)
        if driver is None:
            return None
        try:
            stats = driver.stats(st.alloc_id, st.task)
        except DriverError:
            return None  # exited since it was listed
        except Exception as exc:  # noqa: BLE001 - one task's stats must not stop sampling
            log.debug("metrics: stats of %s/%s failed: %s", st.alloc_id, st.task, exc)
            return None
        return st, float(stats.cpu_percent), int(stats.memory_bytes)

    async def sample(self, states: Iterable[TaskState]) -> dict[str, Any]:
        """One round: every running task's stats (in parallel on the
        executor) and the node's, recorded; returns what was recorded."""
        loop = asyncio.get_running_loop()
        running = [st for st in states if st.running and st.alloc_id]
        results = await asyncio.gather(
            *(loop.run_in_executor(self.executor, self._task_stats, st) for st in running)
        )
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
