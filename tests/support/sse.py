"""A Server-Sent Events client for the tests: reads a stream on a thread."""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any
from urllib.parse import urlsplit

from tests.support import tls


class SseReader:
    """Reads an SSE stream on a thread; `events` holds (event, data) so far."""

    def __init__(self, url: str, token: str | None) -> None:
        parts = urlsplit(url)
        if parts.scheme == "https":  # the test clusters' CAs trusted (tests/support/tls.py)
            self._conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=60, context=tls.context()
            )
        else:
            self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._conn.request("GET", f"{parts.path}?{parts.query}", headers=headers)
        self.response = self._conn.getresponse()
        self.events: list[tuple[str, Any]] = []
        self.comments = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        fields: dict[str, str] = {}
        try:
            while True:
                raw = self.response.readline()
                if not raw:
                    return
                line = raw.decode().rstrip("\r\n")
                if line.startswith(":"):
                    self.comments += 1
                elif not line:
                    if "data" in fields:
                        with self._lock:
                            self.events.append(
                                (fields.get("event", ""), json.loads(fields["data"]))
                            )
                    fields = {}
                else:
                    key, _, value = line.partition(":")
                    fields[key] = value[1:] if value.startswith(" ") else value
        except Exception:  # noqa: BLE001 - closed under our feet: the stream is over
            return

    def ended(self) -> bool:
        """Whether the server closed the stream."""
        return not self._thread.is_alive()

    def logs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [d for e, d in self.events if e == "log"]

    def close(self) -> None:
        try:
            if self._conn.sock is not None:
                self._conn.sock.shutdown(2)
        except OSError:
            pass
        self._conn.close()
