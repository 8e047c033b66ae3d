"""A constant request loop through the ingress while a deployment runs.

One separate process (multiprocessing, spawn: its CPU is its own and it does
not share a GIL with the benchmark driver's long polls), in it one thread per
node and mode, each against its node's ingress HTTP port with ``Host:
<host>``:

* ``keepalive``: ``GET /`` on one kept-alive connection (reopened after an
  error), paced to one request per ``interval``;
* ``fresh``: ``GET /`` on a new connection per request (``Connection:
  close``), paced the same way;
* ``slow_post``: ``POST /cgi-bin/slow`` on a new connection, back to back: the
  task's CGI script answers after 0.3 s, so a request is nearly always in
  flight at some upstream. nginx passes a GET that fails (refused, closed
  without an answer) on to the next upstream (``proxy_next_upstream error
  timeout``), so a container stopped under a GET rarely costs the client
  anything; a POST already sent is never passed on, so one in flight when its
  container stops is a 502 unless the ingress stopped sending to that
  container, and waited for what it had sent, before the container stopped.

The loads are steady, not a flood: the two shared cores also run three
servers, their nginx and the containers. Every answer is recorded:

* a 200 with the page ("<alloc id> <VERSION>"): its version;
* anything else is a failed request, by kind: ``http_<status>`` (502, 503:
  no upstream, 504), ``http_200_truncated`` (a 200 whose body is not the
  page: the CGI's answer cut short when its container stopped; busybox
  streams it without a length, so only the body tells), ``refused`` (nothing listens), ``reset`` (connection
  reset by peer), ``closed`` (the peer closed without answering),
  ``timeout`` (no answer in ``timeout`` seconds), or the exception's name.

A kept-alive connection the server closed while idle (``closed``, ``reset``
or a broken pipe on a reused connection, before any byte of an answer) is
what every HTTP client meets when nginx reloads and its old workers let
their idle connections go; clients (browsers, urllib3, Go's net/http) send
such a request again once on a new connection, and so does this loop:
``stale_keepalive_retried`` counts them, and only a retry that fails too is
a failed request.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import multiprocessing as mp
import queue
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

MODES = ("keepalive", "fresh", "slow_post")
SLOW_PATH = "/cgi-bin/slow"  # the task's CGI script: answers after 0.3 s (deployments_cluster.PAGE)
BUCKET_S = 0.5  # the timeline's resolution
MAX_FAILURES_KEPT = 5000  # each with its time, node, mode, kind


@dataclass
class LoadReport:
    """What the loop saw between its start and its stop. Times are monotonic
    (system-wide on Linux, so they compare with the driver's); ``answers``
    holds every request as (time sent, version served or "" for a failure, mode)."""

    started: float
    stopped: float
    answers: list[tuple[float, str, str]]
    failures: list[dict[str, Any]]  # the first MAX_FAILURES_KEPT
    stale_keepalive_retried: int
    cpu_s: float = 0.0

    @property
    def total(self) -> int:
        return len(self.answers)

    @property
    def failed(self) -> int:
        return sum(1 for _, v, _ in self.answers if not v)

    @property
    def rate(self) -> float:
        return self.total / max(self.stopped - self.started, 1e-9)

    def served_between(self, t0: float, t1: float) -> dict[str, int]:
        """Answers sent in [t0, t1): per version served, and "failed"."""
        out: Counter[str] = Counter()
        for t, v, _ in self.answers:
            if t0 <= t < t1:
                out[f"v{v}" if v else "failed"] += 1
        return dict(out)

    def timeline(self, origin: float) -> list[dict[str, Any]]:
        """Per BUCKET_S: answers per version and failures (t: seconds after ``origin``)."""
        buckets: dict[int, Counter[str]] = {}
        for t, v, _ in self.answers:
            buckets.setdefault(math.floor((t - origin) / BUCKET_S), Counter())[
                f"v{v}" if v else "failed"
            ] += 1
        return [{"t": round(b * BUCKET_S, 2), **dict(c)} for b, c in sorted(buckets.items())]

    def summary(self, origin: float) -> dict[str, Any]:
        """As JSON, times in seconds after ``origin`` (monotonic)."""
        kinds = Counter(f["kind"] for f in self.failures)
        modes = Counter(f["mode"] for f in self.failures)
        nodes = Counter(f["node"] for f in self.failures)
        return {
            "requests": self.total,
            "failed": self.failed,
            "requests_per_s": round(self.rate, 1),
            "window_s": [round(self.started - origin, 3), round(self.stopped - origin, 3)],
            "stale_keepalive_retried": self.stale_keepalive_retried,
            "failures_by_kind": dict(kinds),
            "failures_by_mode": dict(modes),
            "failures_by_node": dict(nodes),
            "requests_by_mode": dict(Counter(m for _, _, m in self.answers)),
            "versions_served": self.served_between(-math.inf, math.inf),
            "failures": [dict(f, t=round(f["t"] - origin, 3)) for f in self.failures[:200]],
            "timeline": self.timeline(origin),
            "cpu_s": round(self.cpu_s, 3),
        }


def _kind(exc: BaseException) -> str:
    if isinstance(exc, http.client.RemoteDisconnected):
        return "closed"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, BrokenPipeError):
        return "broken_pipe"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    return type(exc).__name__


STALE = ("closed", "reset", "broken_pipe")


class _Worker:
    """One thread's connection and counters."""

    def __init__(self, node: str, port: int, host: str, mode: str, timeout: float) -> None:
        self.node, self.port, self.host, self.mode, self.timeout = node, port, host, mode, timeout
        self.conn: http.client.HTTPConnection | None = None
        self.used = 0  # requests answered on the current connection

    def _close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.close()
        self.conn, self.used = None, 0

    def _once(self) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        headers = {"Host": self.host}
        fresh = self.mode in ("fresh", "slow_post")
        if fresh:
            headers["Connection"] = "close"
        if self.mode == "slow_post":
            self.conn.request("POST", SLOW_PATH, body=b"order=1", headers=headers)
        else:
            self.conn.request("GET", "/", headers=headers)
        response = self.conn.getresponse()
        body = response.read()
        self.used += 1
        if fresh or response.will_close:
            self._close()
        return response.status, body

    def request(self) -> tuple[int | None, bytes | str, bool]:
        """(status or None, body or failure kind, retried a stale connection)."""
        reused = self.used > 0
        try:
            status, body = self._once()
            return status, body, False
        except (OSError, http.client.HTTPException) as e:
            kind = _kind(e)
            self._close()
            if not (reused and kind in STALE):
                return None, kind, False
        try:  # a kept-alive connection closed while idle: once more, on a new one
            status, body = self._once()
            return status, body, True
        except (OSError, http.client.HTTPException) as e:
            self._close()
            return None, _kind(e), True


def _failure_kind(status: int | None, body: bytes | str) -> str:
    if status is None:
        return str(body)  # the connection error's kind
    if status == 200:  # not the page: a CGI answer cut short by its container's stop
        return "http_200_truncated"
    return f"http_{status}"


def _run_thread(
    worker: _Worker, interval: float, stop: threading.Event, out: dict[str, Any], lock: Any
) -> None:
    next_at = time.monotonic()
    while not stop.is_set():
        t, sent = time.monotonic(), time.time()
        status, body, retried = worker.request()
        with lock:
            if retried:
                out["stale"] += 1
            parts = body.split() if status == 200 and isinstance(body, bytes) else []
            version = parts[1].decode(errors="replace") if len(parts) == 2 else ""
            out["answers"].append((t, version, worker.mode))
            if not version and len(out["failures"]) < MAX_FAILURES_KEPT:
                out["failures"].append(
                    {
                        "t": t,
                        "wall": round(sent, 3),  # unix time sent, to compare with events
                        "node": worker.node,
                        "mode": worker.mode,
                        "kind": _failure_kind(status, body),
                        "detail": repr(body)[:80],
                        "retried": retried,
                    }
                )
        next_at = max(next_at + interval, time.monotonic())
        stop.wait(max(0.0, next_at - time.monotonic()))
    worker._close()


def _child(
    ports: dict[str, int],
    host: str,
    interval: float,
    timeout: float,
    stop_q: Any,
    started_q: Any,
    result_q: Any,
) -> None:
    out: dict[str, Any] = {"stale": 0, "answers": [], "failures": []}
    lock = threading.Lock()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_run_thread,
            args=(_Worker(node, port, host, mode, timeout), interval, stop, out, lock),
            name=f"load-{node}-{mode}",
            daemon=True,
        )
        for node, port in sorted(ports.items())
        for mode in MODES
    ]
    cpu0 = time.process_time()
    started = time.monotonic()
    for t in threads:
        t.start()
    started_q.put(started)
    stop_q.get()  # the stop signal (anything)
    stop.set()
    for t in threads:
        t.join(timeout + 5)
    stopped = time.monotonic()
    with lock:
        result_q.put(
            {
                "started": started,
                "stopped": stopped,
                "answers": sorted(out["answers"]),
                "failures": list(out["failures"]),
                "stale": out["stale"],
                "cpu_s": time.process_time() - cpu0,
            }
        )


class RequestLoop:
    """``with RequestLoop(ports, host) as loop: ...; report = loop.report``:
    the load runs for the block (stopped, and its process joined, at its end)."""

    def __init__(
        self, ports: dict[str, int], host: str, interval: float = 0.02, timeout: float = 5.0
    ) -> None:
        self.ports, self.host, self.interval, self.timeout = ports, host, interval, timeout
        self.report: LoadReport | None = None
        self.started = 0.0  # monotonic, when its threads began
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._to_child: Any = None
        self._from_child: Any = None

    def __enter__(self) -> RequestLoop:
        self._to_child, self._from_child = self._ctx.Queue(), self._ctx.Queue()
        started_q = self._ctx.Queue()
        self._proc = self._ctx.Process(
            target=_child,
            args=(
                self.ports,
                self.host,
                self.interval,
                self.timeout,
                self._to_child,
                started_q,
                self._from_child,
            ),
            name="bench-deploy-load",
            daemon=True,
        )
        self._proc.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                self.started = started_q.get(timeout=0.5)
                return self
            except queue.Empty:
                if self._proc.exitcode is not None or time.monotonic() > deadline:
                    self._kill()
                    raise RuntimeError("the request loop did not start") from None

    def __exit__(self, *exc: object) -> None:
        try:
            self._to_child.put("stop")
            raw = self._from_child.get(timeout=self.timeout + 30)
            self.report = LoadReport(
                started=raw["started"],
                stopped=raw["stopped"],
                answers=raw["answers"],
                failures=raw["failures"],
                stale_keepalive_retried=raw["stale"],
                cpu_s=raw["cpu_s"],
            )
        finally:
            self._kill()

    def _kill(self) -> None:
        if self._proc is None:
            return
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5)
