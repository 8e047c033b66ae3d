"""The history of this node's metric samples, kept across agent restarts.

:class:`MetricsStore` holds one :class:`~agent.metrics.series.Series` for
the node, one per allocation and one per ingress host (raw 24 h, 1-minute
averages 7 days, 1-hour averages 30 days) and survives an agent restart: every sampling
round is appended to ``journal.jsonl`` and the whole store is written to
``snapshot.msgpack`` every ``compact_interval`` seconds (and on close),
after which the journal starts over. Loading reads the snapshot and
replays the journal (a torn last line is skipped; rounds already in the
snapshot are ignored).

Ingress hosts are capped (``max_ingress_hosts``, 32 by default: a host's
series is about 0.9 MB once it holds its 30 days): the hosts beyond the cap
are merged into one ``_other`` series (rates summed, latency the maximum),
and a host with no sample for an hour gives its place to a new one. The
round as journaled already says which host went where (``evict``), so a
replay rebuilds the same series. The hosts' current counters (for
``/v1/agent/metrics/current``) are kept in memory only: they are the
reader's, which starts over with the agent anyway.

Queries pick the finest tier that still covers the window's start and
average the points into ``step``-wide buckets aligned on multiples of the
step, so series from several nodes line up and can be summed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgpack

from agent.metrics.ingress import merge_points
from agent.metrics.series import Series
from domain.metric_series import (
    ALLOC_FIELDS,
    INGRESS_FIELDS,
    NODE_FIELDS,
    bucketize_columns,
    choose_step,
)

__all__ = ["DEFAULT_INTERVAL", "JOURNAL", "SNAPSHOT", "MetricsStore"]

log = logging.getLogger("heroctl.agent.metrics")

DEFAULT_INTERVAL = 10.0
NODE = "node"
INGRESS = "ingress:"  # + the host: the key of a host's series
OTHER_HOSTS = "_other"  # the hosts beyond the cap (agent.ingress.access_log's name too)
DEFAULT_MAX_INGRESS_HOSTS = 32
IDLE_HOST = 3600.0  # seconds without a sample after which a host's place may be taken
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
        max_ingress_hosts: int = DEFAULT_MAX_INGRESS_HOSTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dir = Path(directory) if directory is not None else None
        self.interval = float(interval)
        self.compact_interval = compact_interval
        self.clock = clock
        self.series: dict[str, Series] = {}
        self.latest: dict[str, Any] = {}
        self.max_ingress_hosts = max(0, int(max_ingress_hosts))
        self._ingress_current: dict[str, dict[str, Any]] = {}
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
        for host in rnd.get("evict") or ():
            self.series.pop(INGRESS + str(host), None)
        for host, point in (rnd.get("ingress") or {}).items():
            key = INGRESS + str(host)
            s = self.series.get(key)
            if s is None:
                s = self.series[key] = Series(key, {"host": str(host)}, INGRESS_FIELDS)
            s.add(t, tuple(_value(point.get(f)) for f in INGRESS_FIELDS))
        self.latest = {
            "t": t,
            "node": dict(node or {}),
            "allocs": {k: dict(v) for k, v in (rnd.get("allocs") or {}).items()},
        }

    def _place_hosts(
        self, t: float, ingress: Mapping[str, Mapping[str, float | None]]
    ) -> tuple[dict[str, dict[str, float | None]], list[str]]:
        """(the round's points by the series they go to, the hosts whose
        series make room): hosts with a series keep it; new ones get the free
        places, then those of hosts idle for IDLE_HOST, busiest first; the rest
        go to OTHER_HOSTS."""
        have = {k[len(INGRESS) :] for k in self.series if k.startswith(INGRESS)}
        have.discard(OTHER_HOSTS)
        placed: dict[str, dict[str, float | None]] = {}
        new: list[tuple[str, Mapping[str, float | None]]] = []
        for host, point in ingress.items():
            if host in have or host == OTHER_HOSTS:
                placed[host] = merge_points(placed.get(host), point)
            else:
                new.append((host, point))
        new.sort(key=lambda hp: (-(hp[1].get("requests") or 0.0), hp[0]))
        free = self.max_ingress_hosts - len(have)
        idle = sorted(
            (self.series[INGRESS + h].last or 0.0, h)
            for h in have
            if h not in ingress and (self.series[INGRESS + h].last or 0.0) < t - IDLE_HOST
        )
        evict = [h for _, h in idle[: max(0, len(new) - max(0, free))]]
        free = max(0, free) + len(evict)
        for host, point in new:
            if free > 0:
                placed[host] = dict(point)
                free -= 1
            else:
                placed[OTHER_HOSTS] = merge_points(placed.get(OTHER_HOSTS), point)
        return placed, evict

    def record(
        self,
        t: float,
        node: Mapping[str, float] | None,
        allocs: Mapping[str, Mapping[str, Any]],
        ingress: Mapping[str, Mapping[str, float | None]] | None = None,
        ingress_current: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """One sampling round: node values by NODE_FIELDS, per allocation
        ``{"job", "group", "cpu", "memory", "tasks"}``, per ingress host its
        history point (INGRESS_FIELDS: rates per second, p99 in ms or None)
        and its current stats (agent.metrics.ingress); None: this node runs
        no ingress or its figures were not read this round."""
        rnd: dict[str, Any] = {
            "t": t,
            "node": dict(node or {}),
            "allocs": {k: dict(v) for k, v in allocs.items()},
        }
        with self._lock:
            if ingress:
                rnd["ingress"], evict = self._place_hosts(t, ingress)
                if evict:
                    rnd["evict"] = evict
            if ingress_current is not None:
                self._ingress_current = {
                    str(h): {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in s.items()}
                    for h, s in ingress_current.items()
                }
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
        host: str | None = None,
        start: float,
        end: float,
        step: float | None = None,
    ) -> dict[str, Any]:
        """``{"step", "series": [{"labels", "points": [[t, v], ...]}]}``: the
        node's series, or one allocation's, or every allocation of a job, or
        one ingress host's (labels ``{"host"}``)."""
        with self._lock:
            if host is not None:
                chosen = [s for k, s in self.series.items() if k == INGRESS + host]
            elif alloc is not None:
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

    def ingress(self) -> dict[str, dict[str, Any]]:
        """Per ingress host at the last round: ``{"requests",
        "requests_per_second", "responses": {"1xx".."5xx"}, "bytes_sent",
        "bytes_received", "upstream_p50_ms", "upstream_p99_ms"}`` (counters
        since the node's access-log reader started; {} without an ingress)."""
        with self._lock:
            return {
                h: {k: (dict(v) if isinstance(v, dict) else v) for k, v in s.items()}
                for h, s in self._ingress_current.items()
            }


def _value(value: Any) -> float:
    """A history value: None (no figure this round) is NaN, which queries skip."""
    return math.nan if value is None else float(value)
