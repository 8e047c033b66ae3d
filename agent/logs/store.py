"""The on-disk log store: one directory of segment files per allocation.

Logs stay where they were written: the agent copies every line its tasks
print into per-allocation files under ``<data_dir>/agent/logs/<alloc>/``,
so they outlive the container (a stopped or replaced allocation stays
readable) and the agent's own restarts. The API of the server that takes a
request reads them here (this node) or asks the node's server for them.

:class:`LogStore` keeps:

* one directory per allocation: numbered segment files of records (see
  :mod:`agent.logs.lines`) plus ``meta.json`` (job, when the allocation
  stopped, followers' cursors);
* a size cap per allocation: segments of a quarter of the cap; when the
  allocation's files exceed the cap the oldest segment goes (drop oldest);
* retention: an allocation that is no longer active (stopped, replaced,
  gone) is stamped ``stopped_at`` by :meth:`LogStore.sweep` and deleted once
  ``retention`` seconds have passed since;
* followers of the live output (:meth:`LogStore.subscribe`) get the last N
  lines and then every new line, with neither a gap nor a duplicate between
  the two: both are taken under the allocation's lock, and each appended
  line carries a sequence number the subscription starts after
  (:mod:`agent.logs.subscription`).

Writers are threads (one per followed output); every call that reads or
writes files blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from agent.logs.lines import LogLine, parse_record
from agent.logs.subscription import SUBSCRIPTION_BUFFER, Subscription, deliver_pending

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_RETENTION", "AllocLog", "LogStore"]

DEFAULT_RETENTION = 24 * 3600.0  # seconds kept after the allocation stopped
DEFAULT_MAX_BYTES = 10 * 2**20  # per allocation
META_FLUSH = 1.0  # seconds between writes of a busy allocation's meta.json
_ALLOC_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_SEGMENT = re.compile(r"^(\d{8})\.log$")


def _iter_back(path: Path, chunk: int = 65536) -> Iterator[bytes]:
    """The records of a file from the last to the first."""
    with open(path, "rb") as f:
        pos = f.seek(0, os.SEEK_END)
        rest = b""
        while pos > 0:
            step = min(chunk, pos)
            pos -= step
            f.seek(pos)
            parts = (f.read(step) + rest).split(b"\n")
            rest = parts[0]
            for part in reversed(parts[1:]):
                if part:
                    yield part
        if rest:
            yield rest


class AllocLog:
    """One allocation's files and followers; every field under ``lock``."""

    def __init__(self, alloc_id: str, directory: Path) -> None:
        self.alloc_id = alloc_id
        self.dir = directory
        self.lock = threading.RLock()
        self.segments: list[int] = []  # oldest first
        self.sizes: dict[int, int] = {}
        self.fh: Any = None  # the newest segment, open for appending
        self.meta: dict[str, Any] = {"alloc": alloc_id, "cursors": {}}
        self.meta_dirty = False
        self.meta_written = 0.0
        self.seq = 0  # lines appended by this process
        self.subs: list[Subscription] = []
        self.pending: list[tuple[int, list[LogLine]]] = []
        self.flush_scheduled = False
        self.loop: asyncio.AbstractEventLoop | None = None
        if directory.is_dir():
            for entry in os.scandir(directory):
                m = _SEGMENT.match(entry.name)
                if m:
                    n = int(m.group(1))
                    self.segments.append(n)
                    self.sizes[n] = entry.stat().st_size
            self.segments.sort()
            with contextlib.suppress(OSError, ValueError):
                meta = json.loads((directory / "meta.json").read_text())
                if isinstance(meta, dict):
                    meta.setdefault("cursors", {})
                    self.meta = meta

    def path(self, n: int) -> Path:
        return self.dir / f"{n:08d}.log"

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    def close_file(self) -> None:
        if self.fh is not None:
            with contextlib.suppress(OSError):
                self.fh.close()
            self.fh = None

    def write_meta(self, now: float) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "meta.json.tmp"
        tmp.write_text(json.dumps(self.meta))
        os.replace(tmp, self.dir / "meta.json")
        self.meta_dirty = False
        self.meta_written = now


class LogStore:
    """Per-allocation log files under ``root`` (see the module doc)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        retention: float = DEFAULT_RETENTION,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.retention = float(retention)
        self.max_bytes = max(4096, int(max_bytes))
        self.segment_bytes = max(1024, self.max_bytes // 4)
        self.clock = clock
        self._allocs: dict[str, AllocLog] = {}
        self._lock = threading.Lock()

    # --- allocations -------------------------------------------------------------------

    def _alloc(self, alloc_id: str) -> AllocLog:
        if not _ALLOC_ID.match(alloc_id):
            raise ValueError(f"invalid allocation id {alloc_id!r}")
        with self._lock:
            a = self._allocs.get(alloc_id)
            if a is None:
                a = self._allocs[alloc_id] = AllocLog(alloc_id, self.root / alloc_id)
            return a

    def allocations(self) -> list[str]:
        """Every allocation with logs here (on disk or being written)."""
        names = {e.name for e in os.scandir(self.root) if e.is_dir() and _ALLOC_ID.match(e.name)}
        with self._lock:
            names.update(a for a, log_ in self._allocs.items() if log_.segments)
        return sorted(names)

    def has(self, alloc_id: str) -> bool:
        if not _ALLOC_ID.match(alloc_id):
            return False
        with self._lock:
            a = self._allocs.get(alloc_id)
            if a is not None and a.segments:
                return True
        return (self.root / alloc_id).is_dir()

    def meta(self, alloc_id: str) -> dict[str, Any]:
        a = self._alloc(alloc_id)
        with a.lock:
            return json.loads(json.dumps(a.meta))

    def cursor(self, alloc_id: str, key: str) -> Any:
        a = self._alloc(alloc_id)
        with a.lock:
            return a.meta["cursors"].get(key)

    def size(self, alloc_id: str) -> int:
        a = self._alloc(alloc_id)
        with a.lock:
            return a.total

    # --- writing -------------------------------------------------------------------------

    def append(
        self,
        alloc_id: str,
        lines: list[LogLine],
        *,
        job: str | None = None,
        cursor: Mapping[str, Any] | None = None,
    ) -> None:
        """Store ``lines`` (from any thread) and hand them to subscribers.
        ``cursor``: a follower's position, kept in meta.json with them."""
        if not lines and not cursor:
            return
        a = self._alloc(alloc_id)
        now = self.clock()
        with a.lock:
            if lines:
                self._write(a, "".join(ln.record() for ln in lines).encode())
                first = a.seq
                a.seq += len(lines)
                if a.subs:
                    a.pending.append((first, lines))
                    if not a.flush_scheduled and a.loop is not None:
                        a.flush_scheduled = True
                        try:
                            a.loop.call_soon_threadsafe(deliver_pending, a)
                        except RuntimeError:  # the loop is closed: nobody listens
                            a.flush_scheduled = False
                            a.pending.clear()
            if job and a.meta.get("job") != job:
                a.meta["job"] = job
                a.meta_dirty = True
            if cursor:
                a.meta["cursors"].update(cursor)
                a.meta_dirty = True
            if a.meta.get("stopped_at") is not None and lines:
                pass  # a late line of a stopped allocation: retention still counts from the stop
            if a.meta_dirty and now - a.meta_written >= META_FLUSH:
                with contextlib.suppress(OSError):
                    a.write_meta(now)

    def _write(self, a: AllocLog, data: bytes) -> None:
        if not a.segments:
            a.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            a.meta.setdefault("created_at", self.clock())
            a.segments.append(1)
            a.sizes[1] = 0
        current = a.segments[-1]
        if a.sizes[current] > 0 and a.sizes[current] + len(data) > self.segment_bytes:
            a.close_file()
            current += 1
            a.segments.append(current)
            a.sizes[current] = 0
        if a.fh is None:
            a.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            a.fh = open(a.path(current), "ab", buffering=0)  # noqa: SIM115 - kept open
        a.fh.write(data)
        a.sizes[current] += len(data)
        while a.total > self.max_bytes and len(a.segments) > 1:
            oldest = a.segments.pop(0)
            a.sizes.pop(oldest, None)
            with contextlib.suppress(FileNotFoundError):
                a.path(oldest).unlink()

    def flush(self) -> None:
        """Write every pending meta.json (cursors) now."""
        now = self.clock()
        with self._lock:
            allocs = list(self._allocs.values())
        for a in allocs:
            with a.lock:
                if a.meta_dirty and a.segments:
                    with contextlib.suppress(OSError):
                        a.write_meta(now)

    def close(self) -> None:
        self.flush()
        with self._lock:
            allocs = list(self._allocs.values())
        for a in allocs:
            with a.lock:
                a.close_file()

    # --- reading -------------------------------------------------------------------------

    def tail(
        self,
        alloc_id: str,
        lines: int | None = 100,
        *,
        stream: str | None = None,
        task: str | None = None,
        since: int | None = None,
    ) -> list[LogLine]:
        """The last ``lines`` lines (all for None) matching the filters and
        newer than ``since`` (µs), oldest first."""
        a = self._alloc(alloc_id)
        with a.lock:
            return self._tail(a, lines, stream, task, since)

    def _tail(
        self,
        a: AllocLog,
        lines: int | None,
        stream: str | None,
        task: str | None,
        since: int | None,
    ) -> list[LogLine]:
        out: list[LogLine] = []
        if lines is not None and lines <= 0:
            return out
        for n in reversed(a.segments):
            try:
                records = _iter_back(a.path(n))
                for raw in records:
                    rec = parse_record(raw)
                    if rec is None:
                        continue
                    if since is not None and rec.us <= since:
                        out.reverse()
                        return out
                    if (stream is None or rec.stream == stream) and (
                        task is None or rec.task == task
                    ):
                        out.append(rec)
                        if lines is not None and len(out) >= lines:
                            out.reverse()
                            return out
            except FileNotFoundError:
                continue
        out.reverse()
        return out

    def subscribe(
        self,
        alloc_id: str,
        loop: asyncio.AbstractEventLoop,
        *,
        lines: int | None = 10,
        stream: str | None = None,
        task: str | None = None,
        since: int | None = None,
        limit: int = SUBSCRIPTION_BUFFER,
    ) -> tuple[list[LogLine], Subscription]:
        """(the last ``lines`` lines, a subscription to every line after them).
        Blocking (reads files): call it from an executor. The subscription's
        :meth:`Subscription.get` runs on ``loop``."""
        a = self._alloc(alloc_id)
        with a.lock:
            backlog = self._tail(a, lines, stream, task, since)
            if a.loop is None or a.loop.is_closed() or not a.subs:
                a.loop = loop
            sub = Subscription(a, a.seq, stream, task, limit)
            a.subs.append(sub)
        return backlog, sub

    # --- retention -------------------------------------------------------------------------

    def sweep(self, active: Iterable[str]) -> list[str]:
        """Stamp allocations that are not ``active`` as stopped (once) and
        delete those stopped longer than the retention; returns the deleted."""
        active = set(active)
        now = self.clock()
        deleted: list[str] = []
        for alloc_id in self.allocations():
            a = self._alloc(alloc_id)
            with a.lock:
                stopped = a.meta.get("stopped_at")
                if alloc_id in active:
                    if stopped is not None:
                        a.meta.pop("stopped_at", None)
                        with contextlib.suppress(OSError):
                            a.write_meta(now)
                    continue
                if stopped is None:
                    a.meta["stopped_at"] = now
                    a.close_file()
                    with contextlib.suppress(OSError):
                        a.write_meta(now)
                    continue
                if now - float(stopped) < self.retention:
                    continue
                a.close_file()
                shutil.rmtree(a.dir, ignore_errors=True)
                a.segments.clear()
                a.sizes.clear()
                for sub in a.subs:
                    sub.closed = True
                a.subs.clear()
            with self._lock:
                if self._allocs.get(alloc_id) is a:
                    del self._allocs[alloc_id]
            deleted.append(alloc_id)
        return deleted
