"""A stand-in for systemd's notification socket: a real unix datagram
socket whose messages a thread collects."""

from __future__ import annotations

import socket
import threading
from pathlib import Path


class NotifySocket:
    """Collects the datagrams sent to ``address`` (a path, or ``@name`` for
    the abstract namespace) as lists of ``KEY=VALUE`` lines."""

    def __init__(self, address: str | Path) -> None:
        self.address = str(address)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bound = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        self.sock.bind(bound)
        self.sock.settimeout(0.2)
        self.messages: list[list[str]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append(data.decode().split("\n"))

    def lines(self) -> list[str]:
        with self._lock:
            return [line for m in self.messages for line in m]

    def count(self, line: str) -> int:
        return self.lines().count(line)

    def statuses(self) -> list[str]:
        return [line[len("STATUS=") :] for line in self.lines() if line.startswith("STATUS=")]

    def close(self) -> None:
        self._closed = True
        self._thread.join(2)
        self.sock.close()
