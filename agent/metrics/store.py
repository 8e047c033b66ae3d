"""The history of this node's metric samples, kept across agent restarts.

:class:`MetricsStore` holds one :class:`~agent.metrics.series.Series` for
the node and one per allocation (raw 24 h, 1-minute averages 7 days,
1-hour averages 30 days) and survives an agent restart: every sampling
round is appended to ``journal.jsonl`` and the whole store is written to
``snapshot.msgpack`` every ``compact_interval`` seconds (and on close),
after which the journal starts over. Loading reads the snapshot and
replays the journal (a torn last line is skipped; rounds already in the
snapshot are ignored).

Queries pick the finest tier that still covers the window's start and
average the points into ``step``-wide buckets aligned on multiples of the
step, so series from several nodes line up and can be summed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgpack

from agent.metrics.series import Series
from domain.metric_series import ALLOC_FIELDS, NODE_FIELDS, bucketize_columns, choose_step

__all__ = ["DEFAULT_INTERVAL", "JOURNAL", "SNAPSHOT", "MetricsStore"]

log = logging.getLogger("heroctl.agent.metrics")

DEFAULT_INTERVAL = 10.0
NODE = "node"
SNAPSHOT = "snapshot.msgpack"
JOURNAL = "journal.jsonl"


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
        self.series: dict[str, Series] = {}
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
                    self.series[key] = Series.load(key, sdoc)
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
                s = self.series[NODE] = Series(NODE, {}, NODE_FIELDS)
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
                s = self.series[key] = Series(key, labels, ALLOC_FIELDS)
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
