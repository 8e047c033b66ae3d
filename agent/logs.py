"""Task logs kept on the node that ran them: capture, an on-disk store, followers.

Logs stay where they were written: the agent copies every line its tasks
print into per-allocation files under ``<data_dir>/agent/logs/<alloc>/``,
so they outlive the container (a stopped or replaced allocation stays
readable) and the agent's own restarts. The API of the server that takes a
request reads them here (this node) or asks the node's server for them.

The store (:class:`LogStore`):

* one directory per allocation: numbered segment files of records
  ``<unix µs>\\t<o|e>\\t<task>\\t<line>\\n`` plus ``meta.json`` (job, when the
  allocation stopped, followers' cursors);
* a size cap per allocation: segments of a quarter of the cap; when the
  allocation's files exceed the cap the oldest segment goes (drop oldest);
* retention: an allocation that is no longer active (stopped, replaced,
  gone) is stamped ``stopped_at`` by :meth:`LogStore.sweep` and deleted once
  ``retention`` seconds have passed since;
* followers of the live output (:meth:`LogStore.subscribe`) get the last N
  lines and then every new line, with neither a gap nor a duplicate between
  the two: both are taken under the allocation's lock, and each appended
  line carries a sequence number the subscription starts after.

Writers are threads (one per followed output); subscribers live on one
asyncio loop, woken with one ``call_soon_threadsafe`` per burst of lines.

The collector (:class:`LogCollector`) follows each task the agent runs:
docker tasks through the engine's log stream (``timestamps=True``, one
stream for stdout and one for stderr, resumed after the last stored line),
exec tasks by tailing their output file (one interleaved stream, recorded
as stdout). :meth:`LogCollector.sync` is called with what the drivers
observe; it starts followers for new or adopted tasks and lets followers of
vanished tasks finish.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.drivers.base import Driver, TaskState

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_RETENTION",
    "LogCollector",
    "LogLine",
    "LogStore",
    "Subscription",
    "format_ts",
    "parse_docker_ts",
]

log = logging.getLogger("heroctl.agent.logs")

DEFAULT_RETENTION = 24 * 3600.0  # seconds kept after the allocation stopped
DEFAULT_MAX_BYTES = 10 * 2**20  # per allocation
MAX_LINE = 16 * 1024  # characters; longer lines are cut (docker splits at 16 KiB too)
SUBSCRIPTION_BUFFER = 200_000  # lines a slow subscriber may lag before the oldest go
META_FLUSH = 1.0  # seconds between writes of a busy allocation's meta.json
STREAMS = ("stdout", "stderr")
TERMINAL = ("complete", "failed", "lost")
_CODE = {"stdout": "o", "stderr": "e"}
_STREAM = {"o": "stdout", "e": "stderr"}
_ALLOC_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_SEGMENT = re.compile(r"^(\d{8})\.log$")


@dataclass(frozen=True, slots=True)
class LogLine:
    us: int  # unix time in microseconds
    stream: str  # stdout | stderr
    task: str
    line: str

    def record(self) -> str:
        return f"{self.us}\t{_CODE.get(self.stream, 'o')}\t{self.task}\t{self.line}\n"

    def to_dict(self, alloc_id: str) -> dict[str, Any]:
        return {
            "alloc": alloc_id,
            "task": self.task,
            "stream": self.stream,
            "ts": format_ts(self.us),
            "us": self.us,
            "line": self.line,
        }

    @staticmethod
    def from_dict(doc: Mapping[str, Any]) -> LogLine:
        return LogLine(int(doc["us"]), str(doc["stream"]), str(doc["task"]), str(doc["line"]))


def _parse_record(raw: bytes) -> LogLine | None:
    try:
        us, code, task, line = raw.decode("utf-8", errors="replace").split("\t", 3)
        return LogLine(int(us), _STREAM.get(code, "stdout"), task, line)
    except ValueError:
        return None  # a torn record (a crash mid-write): skip it


_second_prefix: dict[int, str] = {}


def format_ts(us: int) -> str:
    """RFC 3339 in UTC with microseconds (sorts as text)."""
    sec, frac = divmod(us, 1_000_000)
    prefix = _second_prefix.get(sec)
    if prefix is None:
        if len(_second_prefix) > 4096:
            _second_prefix.clear()
        prefix = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_prefix[sec] = prefix
    return f"{prefix}.{frac:06d}Z"


_epoch_of: dict[str, int] = {}


def parse_docker_ts(text: str) -> int | None:
    """Docker's RFC 3339 nano timestamps (``...T10:26:30.123456789Z``) -> unix µs."""
    if len(text) < 20 or text[10] != "T":
        return None
    base = text[:19]
    sec = _epoch_of.get(base)
    if sec is None:
        try:
            sec = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            return None
        if len(_epoch_of) > 4096:
            _epoch_of.clear()
        _epoch_of[base] = sec
    rest = text[19:]
    frac = 0
    if rest.startswith("."):
        digits = rest[1:].rstrip("Z")
        end = 0
        while end < len(digits) and digits[end].isdigit():
            end += 1
        rest = digits[end:]
        frac = int((digits[:end] + "000000")[:6] or 0)
    elif rest.startswith("Z"):
        rest = rest[1:]
    us = sec * 1_000_000 + frac
    if rest and rest[0] in "+-" and len(rest) >= 6:  # an offset instead of Z
        sign = 1 if rest[0] == "+" else -1
        us -= sign * (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * 1_000_000
    return us


def _clean(text: str) -> str:
    text = text.rstrip("\r")
    return text if len(text) <= MAX_LINE else text[:MAX_LINE]


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


class Subscription:
    """New lines of one allocation, as they are appended (after a backlog)."""

    def __init__(
        self,
        store: LogStore,
        alloc: _AllocLog,
        start_seq: int,
        stream: str | None,
        task: str | None,
        limit: int = SUBSCRIPTION_BUFFER,
    ) -> None:
        self.alloc_id = alloc.alloc_id
        self._store = store
        self._alloc = alloc
        self.start_seq = start_seq
        self.stream = stream
        self.task = task
        self.limit = limit
        self.dropped = 0  # lines lost because this subscriber lagged more than `limit`
        self.closed = False
        self._items: deque[LogLine] = deque()
        self._event = asyncio.Event()

    def _deliver(self, lines: list[LogLine]) -> None:
        if self.closed:
            return
        if self.stream is not None or self.task is not None:
            lines = [
                ln
                for ln in lines
                if (self.stream is None or ln.stream == self.stream)
                and (self.task is None or ln.task == self.task)
            ]
            if not lines:
                return
        self._items.extend(lines)
        over = len(self._items) - self.limit
        if over > 0:
            for _ in range(over):
                self._items.popleft()
            self.dropped += over
        self._event.set()

    async def get(self, timeout: float | None = None) -> list[LogLine]:
        """The lines appended since the last call (waits for one); [] after
        ``timeout`` seconds without any."""
        if not self._items:
            self._event.clear()
            if timeout is None:
                await self._event.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), timeout)
        out = list(self._items)
        self._items.clear()
        return out

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._store._unsubscribe(self)


class _AllocLog:
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
        self._allocs: dict[str, _AllocLog] = {}
        self._lock = threading.Lock()

    # --- allocations -------------------------------------------------------------------

    def _alloc(self, alloc_id: str) -> _AllocLog:
        if not _ALLOC_ID.match(alloc_id):
            raise ValueError(f"invalid allocation id {alloc_id!r}")
        with self._lock:
            a = self._allocs.get(alloc_id)
            if a is None:
                a = self._allocs[alloc_id] = _AllocLog(alloc_id, self.root / alloc_id)
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
                            a.loop.call_soon_threadsafe(self._flush, a)
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

    def _write(self, a: _AllocLog, data: bytes) -> None:
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
        a: _AllocLog,
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
                    rec = _parse_record(raw)
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
            sub = Subscription(self, a, a.seq, stream, task, limit)
            a.subs.append(sub)
        return backlog, sub

    def _unsubscribe(self, sub: Subscription) -> None:
        a = sub._alloc
        with a.lock:
            with contextlib.suppress(ValueError):
                a.subs.remove(sub)
            if not a.subs:
                a.pending.clear()

    def _flush(self, a: _AllocLog) -> None:
        """On the subscribers' loop: hand the lines appended since to each."""
        with a.lock:
            batches, a.pending = a.pending, []
            a.flush_scheduled = False
            subs = list(a.subs)
        for first, batch in batches:
            end = first + len(batch)
            for sub in subs:
                if end <= sub.start_seq:
                    continue
                sub._deliver(batch[max(0, sub.start_seq - first) :])

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


# --- followers ------------------------------------------------------------------------------


class _Follower:
    """Copies one task's output into the store, on threads of its own."""

    def __init__(self, collector: LogCollector, st: TaskState) -> None:
        self.collector = collector
        self.alloc_id = st.alloc_id
        self.task = st.task
        self.job = st.job
        self.handle = st.handle
        self.running = st.running
        self.finishing = threading.Event()  # the task is gone: read what is left, then end
        self.stopping = threading.Event()  # the agent stops: end now
        self.threads: list[threading.Thread] = []

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def seen(self, st: TaskState) -> None:
        self.running = st.running

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.finishing.set()

    def stop(self) -> None:
        self.stopping.set()
        self.finishing.set()

    def append(self, lines: list[LogLine], cursor: Mapping[str, Any] | None = None) -> None:
        self.collector.store.append(self.alloc_id, lines, job=self.job or None, cursor=cursor)


class _DockerFollower(_Follower):
    """The engine's log stream of one container, one thread per stream.
    Resumes after the last stored line (its cursor) when the stream breaks
    while the container still runs, and after an agent restart."""

    def __init__(self, collector: LogCollector, st: TaskState) -> None:
        super().__init__(collector, st)
        self._streams: list[Any] = []
        self._streams_lock = threading.Lock()
        for stream in STREAMS:
            self.threads.append(
                threading.Thread(
                    target=self._run,
                    args=(stream,),
                    name=f"logs-{self.alloc_id[:8]}-{self.task}-{stream}",
                    daemon=True,
                )
            )

    def stop(self) -> None:
        super().stop()
        with self._streams_lock:
            streams = list(self._streams)
        for s in streams:
            with contextlib.suppress(Exception):
                s.close()

    def _run(self, stream: str) -> None:
        key = f"{self.task}:{stream}"
        cursor = _docker_cursor(self.collector.store.cursor(self.alloc_id, key))
        failures = 0
        while not self.stopping.is_set():
            try:
                client = self.collector.docker_client()
                since = max(0.0, cursor[0] / 1e6 - 1) if cursor[0] else None
                logs = client.api.logs(
                    self.handle,
                    stdout=stream == "stdout",
                    stderr=stream == "stderr",
                    stream=True,
                    follow=True,
                    timestamps=True,
                    since=since,
                )
                with self._streams_lock:
                    self._streams.append(logs)
                try:
                    cursor = self._copy(logs, stream, key, cursor)
                finally:
                    with self._streams_lock, contextlib.suppress(ValueError):
                        self._streams.remove(logs)
                    with contextlib.suppress(Exception):
                        logs.close()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - engine gone, container removed...
                failures += 1
                if not self._still_running():
                    return
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("logs: following %s/%s failed: %s", self.alloc_id, key, exc)
                self.stopping.wait(min(5.0, 0.2 * failures))
                continue
            if self.stopping.is_set() or not self._still_running():
                return
            self.stopping.wait(0.2)  # the stream ended with the container running: resume

    def _still_running(self) -> bool:
        try:
            info = self.collector.docker_client().api.inspect_container(self.handle)
        except Exception:  # noqa: BLE001 - not found, engine gone
            return False
        return bool((info.get("State") or {}).get("Running"))

    def _copy(
        self, logs: Iterable[bytes], stream: str, key: str, cursor: tuple[int, int]
    ) -> tuple[int, int]:
        """Store the stream's lines; returns the new cursor.

        The cursor is (µs of the last stored line, how many stored lines
        have that very µs): a burst of lines often shares a microsecond, so
        a resume (which replays from a second before) skips the lines before
        that µs and the first n at it, and keeps everything else."""
        last_us, last_n = cursor
        skip_us, skip_n, skipped = cursor[0], cursor[1], 0
        skipping = skip_us > 0
        buf = b""
        chunks = iter(logs)
        while True:
            chunk = next(chunks, None)
            if chunk is None or self.stopping.is_set():
                complete = [buf] if buf.strip() else []
                buf = b""
            else:
                buf += chunk
                if b"\n" not in buf:
                    if len(buf) <= MAX_LINE * 4:
                        continue
                    buf += b"\n"  # a runaway line without newline
                *complete, buf = buf.split(b"\n")
            batch: list[LogLine] = []
            for raw in complete:
                text = raw.decode("utf-8", errors="replace")
                stamp, _, line = text.partition(" ")
                us = parse_docker_ts(stamp)
                if us is None:  # no timestamp: keep the line, stamped now
                    us, line = int(time.time() * 1e6), text
                if skipping:
                    if us < skip_us:
                        continue  # stored before the resume
                    if us == skip_us and skipped < skip_n:
                        skipped += 1
                        continue
                    skipping = False
                if us == last_us:
                    last_n += 1
                else:
                    last_us, last_n = us, 1
                batch.append(LogLine(us, stream, self.task, _clean(line)))
            if batch:
                self.append(batch, {key: [last_us, last_n]})
            if chunk is None or self.stopping.is_set():
                return last_us, last_n


def _docker_cursor(value: Any) -> tuple[int, int]:
    try:
        if isinstance(value, list | tuple) and len(value) == 2:
            return int(value[0]), int(value[1])
        if value:
            return int(value), 1
    except (TypeError, ValueError):
        pass
    return 0, 0


class _ExecFollower(_Follower):
    """Tails an exec task's output file (stdout and stderr interleaved, so
    recorded as stdout); its cursor is the byte offset read so far."""

    def __init__(self, collector: LogCollector, st: TaskState, path: Path) -> None:
        super().__init__(collector, st)
        self.path = path
        self.threads.append(
            threading.Thread(
                target=self._run, name=f"logs-{self.alloc_id[:8]}-{self.task}", daemon=True
            )
        )

    def _run(self) -> None:
        key = f"{self.task}:offset"
        try:
            offset = int(self.collector.store.cursor(self.alloc_id, key) or 0)
        except (TypeError, ValueError):
            offset = 0
        partial = b""
        while not self.stopping.is_set():
            finishing = self.finishing.is_set()
            data = b""
            try:
                with open(self.path, "rb") as f:
                    size = f.seek(0, os.SEEK_END)
                    if size < offset:  # a new file: start over
                        offset, partial = 0, b""
                    f.seek(offset)
                    data = f.read(4 * 2**20)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("logs: reading %s failed: %s", self.path, exc)
            if data:
                offset += len(data)
                *complete, partial = (partial + data).split(b"\n")
                if len(partial) > MAX_LINE * 4:
                    complete.append(partial)
                    partial = b""
                now = int(time.time() * 1e6)
                batch = [
                    LogLine(now, "stdout", self.task, _clean(raw.decode("utf-8", "replace")))
                    for raw in complete
                ]
                self.append(batch, {key: offset - len(partial)})
                continue
            if finishing:
                if partial.strip():
                    line = _clean(partial.decode("utf-8", "replace"))
                    self.append(
                        [LogLine(int(time.time() * 1e6), "stdout", self.task, line)], {key: offset}
                    )
                return
            self.stopping.wait(self.collector.exec_poll)


class LogCollector:
    """Follows the output of every task this node runs into ``store``.

    ``drivers``: the agent's drivers by name; docker and exec tasks are
    followed, tasks of other drivers are not (their ``logs()`` still works).
    ``executor``: where the retention sweep (file I/O) runs.
    """

    def __init__(
        self,
        store: LogStore,
        drivers: Mapping[str, Driver],
        *,
        executor: Executor | None = None,
        sweep_interval: float = 30.0,
        exec_poll: float = 0.2,
        docker_factory: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.drivers = dict(drivers)
        self.executor = executor
        self.sweep_interval = sweep_interval
        self.exec_poll = exec_poll
        self.clock = clock
        self._docker_factory = docker_factory
        self._docker: Any = None
        self._docker_lock = threading.Lock()
        self._followers: dict[tuple[str, str], _Follower] = {}
        self._last_sweep: float | None = None
        self._sweeping: Any = None
        self._closed = False

    def docker_client(self) -> Any:
        """A docker client of the collector's own, so long-lived log streams
        never take the driver's connections (nor it theirs)."""
        with self._docker_lock:
            if self._docker is None:
                if self._docker_factory is not None:
                    self._docker = self._docker_factory()
                else:
                    import docker

                    self._docker = docker.from_env(timeout=3600, max_pool_size=1024)
            return self._docker

    def _new_follower(self, st: TaskState) -> _Follower | None:
        driver = self.drivers.get(st.driver)
        if driver is None:
            return None
        if st.driver == "docker" and hasattr(driver, "client"):
            return _DockerFollower(self, st)
        task_dir = getattr(driver, "task_dir", None)
        if st.driver == "exec" and task_dir is not None:
            return _ExecFollower(self, st, Path(task_dir(st.alloc_id, st.task)) / "output.log")
        return None

    def following(self) -> list[tuple[str, str]]:
        return [k for k, f in self._followers.items() if f.alive]

    def sync(self, states: Iterable[TaskState], active: Iterable[str] | None = None) -> None:
        """What the drivers observe now: follow tasks not followed yet (new,
        restarted, adopted), let followers of vanished tasks finish.
        ``active``: the allocations that should run here, for the retention
        sweep (None until the agent knows what the cluster wants)."""
        if self._closed:
            return
        seen: set[tuple[str, str]] = set()
        for st in states:
            if not st.alloc_id or not st.task:
                continue
            key = (st.alloc_id, st.task)
            seen.add(key)
            current = self._followers.get(key)
            if current is not None:
                current.seen(st)
                if current.alive:
                    if st.handle == current.handle or st.driver == "exec":
                        continue
                    current.finish()  # a new container: the old stream ends by itself
                    continue
                if current.handle == st.handle and (not st.running or st.driver == "exec"):
                    continue  # read to its end already
                if current.handle == st.handle and st.running and st.driver == "docker":
                    pass  # the stream ended while it runs: follow again (resumes)
            follower = self._new_follower(st)
            if follower is None:
                continue
            self._followers[key] = follower
            follower.start()
        for key, follower in list(self._followers.items()):
            if key not in seen:
                follower.finish()
                if not follower.alive:
                    del self._followers[key]
        if active is not None:
            self._maybe_sweep(set(active))

    def sync_supervisor(self, sup: Any) -> None:
        """:meth:`sync` with what an :class:`agent.supervisor.Supervisor`
        observes; allocations wanted running (and not terminal) are active."""
        active: set[str] | None = None
        if sup.desired is not None:
            active = set()
            for alloc_id, doc in sup.desired.items():
                rt = sup.runtimes.get(alloc_id)
                terminal = rt.terminal if rt is not None else doc.get("status") in TERMINAL
                if doc.get("desired_status", "run") == "run" and not terminal:
                    active.add(alloc_id)
        self.sync(list(sup.observed.values()), active)

    def _maybe_sweep(self, active: set[str]) -> None:
        now = self.clock()
        if self._last_sweep is not None and now - self._last_sweep < self.sweep_interval:
            return
        if self._sweeping is not None and not self._sweeping.done():
            return
        self._last_sweep = now
        # Allocations still being followed are kept whatever the cluster says.
        keep = active | {k[0] for k, f in self._followers.items() if f.alive}
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.store.sweep(keep)
            return
        self._sweeping = loop.run_in_executor(self.executor, self.store.sweep, keep)

    def close(self, timeout: float = 2.0) -> None:
        """Stop following (the tasks keep running; the next agent resumes)."""
        self._closed = True
        followers = list(self._followers.values())
        for f in followers:
            f.stop()
        deadline = time.monotonic() + timeout
        for f in followers:
            for t in f.threads:
                if t.is_alive():
                    t.join(max(0.0, deadline - time.monotonic()))
        self._followers.clear()
        self.store.flush()
        with self._docker_lock:
            if self._docker is not None:
                with contextlib.suppress(Exception):
                    self._docker.close()
                self._docker = None
