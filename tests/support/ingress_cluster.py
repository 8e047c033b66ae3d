"""A cluster of real heroctld servers whose embedded agents each run a real
nginx ingress on their own high ports on 127.0.0.1, for the ingress and
deployment-traffic end-to-end tests, and why such a test must skip."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.ingress import NginxSupervisor, Paths
from agent.ingress.process import reap_stale
from tests.support.cluster import Cluster, DaemonProcess, Server, free_port, wait_until
from tests.support.ingress_workloads import SYSTEM_PYTHON


def nginx_missing() -> str | None:
    found, reason = NginxSupervisor.probe()
    return None if found else reason


def python_missing() -> str | None:
    """Why an exec task cannot run Debian's Python (the echo server), or None."""
    return None if Path(SYSTEM_PYTHON).exists() else f"no {SYSTEM_PYTHON} for the exec task"


def ingress_prefix(daemon: DaemonProcess) -> Path:
    return daemon.data_dir / "agent" / "ingress"


def reap(daemon: DaemonProcess) -> None:
    """Stop an nginx its daemon left running (killed, it could not stop it)."""
    if (ingress_prefix(daemon) / "run").exists():
        reap_stale(Paths.in_prefix(ingress_prefix(daemon)))


def ingress_rows(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """Each node's status and registered ingress, by name."""
    api = cluster.live()[0]
    rows = {}
    for node in api.get("/v1/nodes").body:
        detail = api.get(f"/v1/nodes/{node['id']}").body
        rows[node["name"]] = {"status": detail["status"], **(detail.get("ingress") or {})}
    return rows


def wait_ingress_serving(
    cluster: Cluster, count: int, *, https: bool = False, timeout: float = 60.0
) -> None:
    """Until ``count`` ready nodes registered an enabled ingress (``https``: with its
    HTTPS port). A timeout says what every node registered and what the servers
    logged about their ingress."""

    def serving() -> bool:
        rows = ingress_rows(cluster).values()
        ok = [r for r in rows if r["status"] == "ready" and r.get("enabled")]
        return len([r for r in ok if r.get("https_port") or not https]) == count

    try:
        wait_until(serving, timeout, 0.2, f"{count} ready nodes serving the ingress")
    except TimeoutError as e:
        lines = [
            f"{s.name}: {line}"
            for s in cluster.servers
            for line in s.log().splitlines()
            if "ingress" in line or "nginx" in line
        ]
        raise TimeoutError(
            f"{e}\nnodes: {ingress_rows(cluster)}\n" + "\n".join(lines[-40:])
        ) from None


def ingress_port(server: Server) -> int:
    return int(server.env["HEROCTL_INGRESS_HTTP_PORT"])


@contextlib.contextmanager
def ingress_cluster(root: Path, size: int = 3, **env: Any) -> Iterator[Cluster]:
    """``size`` servers with agents, each ingress on its own free ports on
    127.0.0.1, every node ready; stopped (and any nginx left reaped) after."""
    c = Cluster(root, size, agent=True, env=env or None)
    for server in c.servers:
        server.env["HEROCTL_INGRESS_HTTP_PORT"] = str(free_port())
        server.env["HEROCTL_INGRESS_HTTPS_PORT"] = str(free_port())
        server.env["HEROCTL_INGRESS_BIND"] = "127.0.0.1"
    try:
        c.start()
        wait_until(
            lambda: (
                len([n for n in c.live()[0].get("/v1/nodes").body if n["status"] == "ready"])
                == size
            ),
            30,
            0.2,
            f"{size} ready nodes",
        )
        yield c
    finally:
        c.stop()
        for server in c.servers:
            reap(server)
