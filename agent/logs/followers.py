"""Followers: the threads that copy one task's output into the log store.

One kind per driver, because each reads a different source and resumes
differently after a break or an agent restart (the position is a cursor
kept in the allocation's ``meta.json``):

* docker: the engine's log stream (``timestamps=True``), one thread for
  stdout and one for stderr, resumed after the last stored line;
* exec: the task's output file (stdout and stderr interleaved, recorded as
  stdout), tailed by polling; the cursor is the byte offset read so far.

Every call here blocks (engine streams, file reads): followers run on
threads of their own, never on the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.drivers.base import DriverError, TaskState
from agent.logs.lines import MAX_LINE, STREAMS, LogLine, clean_line, parse_docker_ts

if TYPE_CHECKING:
    from agent.logs.collector import LogCollector

__all__ = ["DockerFollower", "ExecFollower", "Follower"]

log = logging.getLogger("heroctl.agent.logs")


class Follower:
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


class DockerFollower(Follower):
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
        """Asked through the driver (its engine timeout, its errors), not
        the collector's streaming client, whose long read timeout is for
        silent streams, not for an engine that hangs."""
        driver = self.collector.drivers.get("docker")
        try:
            st = driver.inspect(self.alloc_id, self.task) if driver is not None else None
        except DriverError:  # not found, engine gone
            return False
        return st is not None and st.running and st.handle == self.handle

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
                batch.append(LogLine(us, stream, self.task, clean_line(line)))
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


class ExecFollower(Follower):
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
                    LogLine(now, "stdout", self.task, clean_line(raw.decode("utf-8", "replace")))
                    for raw in complete
                ]
                self.append(batch, {key: offset - len(partial)})
                continue
            if finishing:
                if partial.strip():
                    line = clean_line(partial.decode("utf-8", "replace"))
                    self.append(
                        [LogLine(int(time.time() * 1e6), "stdout", self.task, line)], {key: offset}
                    )
                return
            self.stopping.wait(self.collector.exec_poll)
