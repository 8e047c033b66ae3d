"""Constant request load through the ingress, for the zero-dropped-requests
tests of deployments (tests/integration/test_deployments_traffic.py).

``SteadyLoad`` runs one thread per ingress port and request (``GET /`` by
default; a slow ``POST`` keeps requests in flight, and nginx never sends a
POST it already sent to another upstream): each sends it with the site's
``Host`` header on a fresh connection (``Connection: close``), paced, until
stopped, and records every answer (status, body) or failure (the exception)
in order. A 200 with an empty body is a failure too (a streamed answer cut
off when its task stopped). A fresh connection per request keeps the client's own
keep-alive races with nginx's reloads (a reused connection closed by an old
worker) out of what is measured: what the deployment drops.

``logged`` reads the nodes' JSON access logs and ``retried_upstreams``
finds the requests nginx had to send to a second upstream (``upstream_addr`` lists more than
one): those reached an allocation that did not answer, which nginx's retry
hid from the client.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Answer:
    at: float
    port: int
    status: int  # 0: no HTTP answer (see error)
    body: str = ""
    error: str = ""
    method: str = "GET"

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.body)


@dataclass
class SteadyLoad:
    host: str
    ports: list[int]
    requests: tuple[tuple[str, str], ...] = (("GET", "/"),)  # (method, path): a thread each
    pace: float = 0.02  # seconds between a thread's requests
    timeout: float = 10.0
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> SteadyLoad:
        for port in self.ports:
            for method, path in self.requests:
                t = threading.Thread(target=self._loop, args=(port, method, path), daemon=True)
                t.start()
                self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)

    def _loop(self, port: int, method: str, path: str) -> None:
        while not self._stop.is_set():
            answer = self.one(port, method, path)
            with self._lock:
                self.answers.append(answer)
            self._stop.wait(self.pace)

    def one(self, port: int, method: str = "GET", path: str = "/") -> Answer:
        """One request on a fresh connection."""
        began = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout)
        try:
            conn.request(method, path, headers={"Host": self.host, "Connection": "close"})
            response = conn.getresponse()
            body = response.read().decode(errors="replace").strip()
            return Answer(began, port, response.status, body, method=method)
        except (OSError, http.client.HTTPException) as e:
            return Answer(began, port, 0, error=f"{type(e).__name__}: {e}", method=method)
        finally:
            conn.close()

    # -- what was seen --------------------------------------------------------

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def failures(self) -> list[Answer]:
        return [a for a in self.snapshot() if not a.ok]

    def bodies_since(self, index: int) -> list[str]:
        return [a.body for a in self.snapshot()[index:] if a.ok]


def logged(access_logs: list[Path], host: str, since: float) -> list[dict[str, object]]:
    """The access-log entries for ``host`` at or after ``since`` (epoch
    seconds), each with ``log``: the file it came from (one per node)."""
    found = []
    for path in access_logs:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("host") == host and float(entry.get("msec", 0)) >= since:
                found.append({**entry, "log": str(path)})
    return found


def retried_upstreams(entries: list[dict[str, object]]) -> list[dict[str, object]]:
    """The entries nginx sent to more than one upstream."""
    return [e for e in entries if "," in str(e.get("upstream_addr", ""))]
