"""Per-host traffic numbers from nginx's JSON access log.

``AccessLogReader`` tails ``logs/access.log`` (one JSON object a line, the
fields of ``render.LOG_FORMAT_FIELDS``) from where it last stopped and folds
each request into its host's counters: requests, responses by class, bytes
sent, and the upstream latency of the recent requests (p50/p99 over a time
window, from a fixed-size ring of samples: memory stays bounded whatever the
traffic). The host is nginx's ``$server_name``: a configured site, or ``_``
for every name we do not serve, so a client inventing Host headers cannot
grow the table (``max_hosts`` bounds it anyway).

The log never grows without bound: once the reader has read to the end of a
file larger than ``truncate_above`` it truncates it in place; nginx writes
with ``O_APPEND`` and simply carries on at the new end (its workers, running
as ``nobody``, could not reopen a file in the prefix anyway). A file that
shrank (truncated by the supervisor's hard cap) or was replaced (another
inode) is read again from its start.

``poll`` does blocking reads: the agent calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["AccessLogReader", "HostStats", "OTHER_HOSTS"]

OTHER_HOSTS = "_other"
_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


@dataclass
class HostStats:
    """Counters since the reader started, and the recent upstream latencies."""

    requests: int = 0
    responses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_CLASSES, 0))
    bytes_sent: int = 0
    bytes_received: int = 0
    # (time of the request, seconds spent in upstreams); the oldest fall off.
    samples: deque[tuple[float, float]] = field(default_factory=deque)

    def latency(self, since: float) -> tuple[float | None, float | None]:
        """p50 and p99 of the upstream response time (seconds) of requests after ``since``."""
        values = sorted(seconds for at, seconds in self.samples if at >= since)
        if not values:
            return None, None
        return _quantile(values, 0.50), _quantile(values, 0.99)


def _quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of a sorted, non-empty list."""
    rank = max(1, -(-len(ordered) * q // 1))
    return ordered[min(len(ordered), int(rank)) - 1]


class AccessLogReader:
    """Tail one JSON access log and aggregate it per host."""

    def __init__(
        self,
        path: Path,
        *,
        window: float = 60.0,
        samples_per_host: int = 1024,
        max_hosts: int = 4096,
        truncate_above: int = 16 << 20,
        from_start: bool = False,
        max_read: int = 8 << 20,
    ) -> None:
        self.path = Path(path)
        self.window = window
        self._samples_per_host = samples_per_host
        self._max_hosts = max_hosts
        self._truncate_above = truncate_above
        self._max_read = max_read
        self._hosts: dict[str, HostStats] = {}
        self._lock = threading.Lock()
        self._inode: int | None = None
        self._offset = 0
        self._partial = b""
        self.malformed = 0
        if not from_start:
            try:
                st = self.path.stat()
                self._inode, self._offset = st.st_ino, st.st_size
            except OSError:
                pass

    def poll(self) -> int:
        """Read what was appended since the last poll; returns the lines folded in."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:
            return 0
        try:
            st = os.fstat(fd)
            if st.st_ino != self._inode or st.st_size < self._offset:
                self._inode, self._offset, self._partial = st.st_ino, 0, b""
            chunk = b""
            if st.st_size > self._offset:
                chunk = os.pread(fd, min(st.st_size - self._offset, self._max_read), self._offset)
                self._offset += len(chunk)
            count = self._fold(chunk)
            if (
                self._offset >= self._truncate_above
                and not self._partial
                and os.fstat(fd).st_size == self._offset
            ):
                # Read to the end: what nginx appends from here goes to offset 0.
                os.ftruncate(fd, 0)
                self._offset = 0
            return count
        finally:
            os.close(fd)

    def _fold(self, chunk: bytes) -> int:
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > 65536:  # no line of ours is that long: not a log line
            self._partial = b""
            self.malformed += 1
        count = 0
        with self._lock:
            for line in lines:
                if line and self._fold_line(line):
                    count += 1
        return count

    def _fold_line(self, line: bytes) -> bool:
        try:
            entry = json.loads(line)
            host = str(entry["host"])
            status = int(entry["status"])
            bytes_sent = int(entry.get("bytes_sent", 0))
            received = int(entry.get("request_length", 0))
            at = float(entry.get("msec", time.time()))
        except (ValueError, KeyError, TypeError):
            self.malformed += 1
            return False
        stats = self._hosts.get(host)
        if stats is None:
            if len(self._hosts) >= self._max_hosts:
                host = OTHER_HOSTS
            stats = self._hosts.setdefault(
                host, HostStats(samples=deque(maxlen=self._samples_per_host))
            )
        stats.requests += 1
        label = f"{status // 100}xx"
        if label in stats.responses:
            stats.responses[label] += 1
        stats.bytes_sent += bytes_sent
        stats.bytes_received += received
        upstream = _upstream_seconds(str(entry.get("upstream_response_time", "")))
        if upstream is not None:
            stats.samples.append((at, upstream))
        return True

    def hosts(self) -> list[str]:
        with self._lock:
            return sorted(self._hosts)

    def stats(self, host: str) -> HostStats | None:
        """The live counters of ``host`` (None if it had no request yet)."""
        with self._lock:
            return self._hosts.get(host)

    def snapshot(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        """Every host's numbers, JSON-ready (latencies in milliseconds)."""
        since = (time.time() if now is None else now) - self.window
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for host, s in sorted(self._hosts.items()):
                p50, p99 = s.latency(since)
                out[host] = {
                    "requests": s.requests,
                    "responses": dict(s.responses),
                    "bytes_sent": s.bytes_sent,
                    "bytes_received": s.bytes_received,
                    "upstream_p50_ms": None if p50 is None else round(p50 * 1000, 3),
                    "upstream_p99_ms": None if p99 is None else round(p99 * 1000, 3),
                }
        return out


def _upstream_seconds(value: str) -> float | None:
    """``$upstream_response_time``: ``0.004``; ``0.001, 0.003`` when a failed
    upstream was tried first (the total is what the client waited); ``-`` or
    empty when no upstream answered (our own pages)."""
    total = 0.0
    seen = False
    for part in value.replace(":", ",").split(","):
        part = part.strip()
        if part and part != "-":
            try:
                total += float(part)
                seen = True
            except ValueError:
                return None
    return total if seen else None
