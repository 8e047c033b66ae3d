"""Ports for the tests' daemons, chosen before the daemon binds them.

A port from ``bind(0)`` is one of the kernel's ephemeral ports, the ones
outgoing connections take: on a busy machine another process's connection
can take it between our choice and the daemon's bind, and the daemon fails
to start (a flake). So the tests choose below the ephemeral range, each
pytest-xdist worker in a block of its own (test files running in parallel
never share a port), each port checked free when handed out.

Each worker's block has two parts: single ports (API, raft, ingress,
pebble, receivers), and ranges of consecutive ports for agents to publish
task ports on (``HEROCTL_AGENT_PORT_RANGE``), which stay unbound until a task
runs and so must never be handed out as single ports.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from pathlib import Path

__all__ = ["free_port", "port_range"]

FLOOR = 10000  # below: well-known services and what other software picks
RANGES_SHARE = 0.4  # of a worker's block, for agents' port ranges


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def worker_block(worker: str | None, workers: int, top: int) -> range:
    """This worker's share of ``[FLOOR, top)`` (``worker``: xdist's ``gwN``, None alone)."""
    index = int(worker[2:]) if worker and worker.startswith("gw") and worker[2:].isdigit() else 0
    workers = max(workers, index + 1)
    size = max(0, top - FLOOR) // workers
    start = FLOOR + index * size
    return range(start, start + size)


def _bindable(port: int, udp: bool) -> bool:
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,)
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:  # as the daemons bind (aiohttp, nginx)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


class _Cursor:
    """Hands out ``count`` consecutive bindable ports of ``span``, in turn."""

    def __init__(self, span: range) -> None:
        self.span = span
        self.next = span.start + (secrets.randbelow(len(span)) if span else 0)
        self.lock = threading.Lock()

    def take(self, count: int, udp: bool = False) -> int | None:
        with self.lock:
            for _ in range(max(1, len(self.span) // count)):
                start = self.next
                if start + count > self.span.stop:
                    start = self.span.start
                self.next = start + count
                if all(_bindable(p, udp) for p in range(start, start + count)):
                    return start
        return None


_block = worker_block(
    os.environ.get("PYTEST_XDIST_WORKER"),
    int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1),
    _ephemeral_start(),
)
_split = _block.start + int(len(_block) * RANGES_SHARE)
_ranges = _Cursor(range(_block.start, _split))
_singles = _Cursor(range(_split, _block.stop))


def free_port(udp: bool = False) -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (``udp``: free for UDP too)."""
    port = _singles.take(1, udp) if len(_singles.span) >= 100 else None
    if port is not None:
        return port
    for _ in range(50):  # no room below the ephemeral range here: the kernel's choice
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not udp or _bindable(port, True):
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def port_range(count: int) -> tuple[int, int]:
    """``count`` consecutive free ports (first, last) for an agent to publish on."""
    first = _ranges.take(count) if len(_ranges.span) >= count else None
    if first is None:
        raise RuntimeError(f"no {count} consecutive free ports below the ephemeral range")
    return first, first + count - 1
