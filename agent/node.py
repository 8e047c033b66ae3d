"""This node as the cluster sees it: a stable id, what it offers, what it uses.

The id is generated once and kept in ``<data_dir>/agent/node-id``, so a
restarted agent (or a ``kill -9`` of its daemon) comes back as the same
node and finds its allocations again. A worker-only node that serves its
agent API also keeps its node secret there (``node-secret``, mode 0600: the
key the servers' credentials are checked with, see
:mod:`domain.node_credentials`). Totals and usage come from ``/proc``
and ``statvfs``: cheap enough to read on every heartbeat.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from agent.drivers.base import host_cpu
from domain.node_credentials import new_node_secret

__all__ = [
    "NodeIdentity",
    "load_node_id",
    "load_node_secret",
    "detect_totals",
    "CpuSampler",
    "host_usage",
]

NODE_ID_FILE = "node-id"
NODE_SECRET_FILE = "node-secret"
_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_SECRET_RE = re.compile(r"^[0-9a-f]{64}$")


def load_node_id(data_dir: str | os.PathLike[str]) -> str:
    """The node id stored under ``data_dir``, created on the first call.

    Written to a temporary file and renamed, so a crash never leaves a torn
    id behind (a torn id would make this node a stranger to its containers).
    """
    directory = Path(data_dir) / "agent"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / NODE_ID_FILE
    with contextlib.suppress(FileNotFoundError):
        text = path.read_text().strip()
        if _ID_RE.match(text):
            return text
    node_id = uuid.uuid4().hex
    tmp = directory / f".{NODE_ID_FILE}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(node_id + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return node_id


def load_node_secret(data_dir: str | os.PathLike[str]) -> str:
    """The node secret stored under ``data_dir`` (mode 0600), created on the
    first call; written like the id (temporary file, fsync, rename), and
    created 0600 from the start so it is never readable by others."""
    directory = Path(data_dir) / "agent"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / NODE_SECRET_FILE
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)  # copied around with a looser mode: tighten it
        text = path.read_text().strip()
        if _SECRET_RE.match(text):
            return text
    secret = new_node_secret()
    tmp = directory / f".{NODE_SECRET_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return secret


def _meminfo() -> dict[str, int]:
    """``/proc/meminfo`` in kB."""
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    out[key] = int(parts[0])
    except OSError:
        pass
    return out


def memory_mb() -> tuple[int, int]:
    """(total, used) MB of this machine's memory (used: all but MemAvailable)."""
    info = _meminfo()
    total = info.get("MemTotal", 0)
    used_kb = total - info.get("MemAvailable", info.get("MemFree", 0))
    return total // 1024, max(0, used_kb) // 1024


def disk_mb(path: str) -> tuple[int, int]:
    """(total, used) MB of the filesystem holding ``path``."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 0, 0
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    return total // 2**20, max(0, total - free) // 2**20


def detect_totals(data_dir: str) -> dict[str, int]:
    """cpu (cores x MHz), memory (MB) and disk (MB of the data dir's
    filesystem) of this machine."""
    cores, mhz = host_cpu()
    memory, _ = memory_mb()
    disk, _ = disk_mb(data_dir)
    return {"cpu": cores * mhz, "memory": memory, "disk": disk}


class CpuSampler:
    """Busy share of all cores between two reads of ``/proc/stat``."""

    def __init__(self) -> None:
        self._prev: tuple[int, int] | None = None

    @staticmethod
    def _read() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as f:
                fields = f.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu":
            return None
        values = [int(v) for v in fields[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values), idle

    def busy_fraction(self) -> float:
        now = self._read()
        prev, self._prev = self._prev, now
        if now is None or prev is None or now[0] <= prev[0]:
            return 0.0
        total = now[0] - prev[0]
        idle = now[1] - prev[1]
        return max(0.0, min(1.0, 1.0 - idle / total))


def host_usage(data_dir: str, cpu_total: int, sampler: CpuSampler) -> dict[str, int]:
    """What this machine uses now: cpu MHz, memory MB, disk MB."""
    _, memory_used = memory_mb()
    _, disk_used = disk_mb(data_dir)
    return {
        "cpu": int(round(sampler.busy_fraction() * cpu_total)),
        "memory": memory_used,
        "disk": disk_used,
    }


@dataclass(frozen=True)
class NodeIdentity:
    """What the agent registers: ``POST /v1/nodes/register``."""

    id: str
    name: str
    address: str
    cpu: int
    memory: int
    disk: int
    drivers: tuple[str, ...]
    port_range: tuple[int, int]
    labels: dict[str, str]
    attributes: dict[str, str]
    # A worker-only node's secret (its credential to the servers and theirs to
    # its agent API are made with it; sent with each registration, never
    # logged) and the agent API it serves, if any.
    agent_api: str | None = None
    agent_secret: str | None = field(default=None, repr=False)
    agent_csr: str | None = field(default=None, repr=False)  # https agent API: signed back
    # Whether this node serves the ingress, and why not (agent.ingress_sync).
    ingress: dict[str, object] | None = None

    def register_body(self) -> dict[str, object]:
        body: dict[str, object] = {
            "id": self.id,
            "name": self.name,
            "address": self.address,
            "resources": {"cpu": self.cpu, "memory": self.memory, "disk": self.disk},
            "drivers": list(self.drivers),
            "labels": dict(self.labels),
            "attributes": dict(self.attributes),
            "port_range": [self.port_range[0], self.port_range[1]],
        }
        if self.ingress is not None:
            body["ingress"] = dict(self.ingress)
        if self.agent_secret:
            body["agent_secret"] = self.agent_secret
        if self.agent_api and self.agent_secret:
            body["agent_api"] = self.agent_api
            if self.agent_csr:
                body["agent_csr"] = self.agent_csr
        return body
