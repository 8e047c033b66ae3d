"""How many TCP connections a task's published ports hold, from the kernel's
socket tables (``/proc/net/tcp`` and ``tcp6`` of the agent's network
namespace, the host's: where a task's ports are published).

A rainbow deployment's old allocation keeps running while the connections
it took before the ingress let go of it stay open (websockets, long polls,
downloads). Each of those is an established socket whose local port is one
of the allocation's host ports: the ingress's connection to docker-proxy, or
to an exec task listening on the host. Listening sockets and the other end
of a loopback connection (local port ephemeral) do not count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from pathlib import Path

TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
ESTABLISHED = "01"

__all__ = ["established_per_port", "established_to"]


def established_per_port(tables: Collection[Path] = TABLES) -> Counter[int]:
    """Established TCP connections per local port (one read of each table)."""
    counts: Counter[int] = Counter()
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == ESTABLISHED:
                counts[int(fields[1].rpartition(":")[2], 16)] += 1
    return counts


def established_to(ports: Collection[int], tables: Collection[Path] = TABLES) -> int:
    """Established TCP connections whose local port is one of ``ports``."""
    if not ports:
        return 0
    counts = established_per_port(tables)
    return sum(counts[port] for port in set(ports))
