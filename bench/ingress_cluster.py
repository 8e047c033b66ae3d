"""The ingress benchmark's cluster: three real heroctld servers (plain HTTP API)
whose embedded agents run Docker tasks and each their own nginx on their own
ports on 127.0.0.1, beside a real ACME server (pebble) whose validator
reaches the first node's ingress; and the jobs it runs (busybox httpd
answering its allocation's id, so a response says who served it).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import BENCH_ENV, log
from tests.support.cluster import Cluster, Server, free_port, wait_until
from tests.support.pebble import Pebble, running_pebble
from tests.support.workloads import IMAGE, docker_unavailable

# Each allocation's page is its own id.
PAGE = "mkdir -p /tmp/www && echo $HEROCTL_ALLOC_ID > /tmp/www/index.html && "
PAGE += "exec httpd -f -p 8080 -h /tmp/www"
NODE_CPU_MHZ = 40_000  # what each node offers: room for a 2-core task and many small ones
NODE_MEMORY_MB = 8192


@dataclass
class IngressCluster:
    cluster: Cluster
    pebble: Pebble
    root: Path

    @property
    def api(self) -> Server:
        return self.cluster.servers[0]

    def http_ports(self) -> dict[str, int]:
        return {s.name: int(s.env["HEROCTL_INGRESS_HTTP_PORT"]) for s in self.cluster.servers}

    def https_ports(self) -> dict[str, int]:
        return {s.name: int(s.env["HEROCTL_INGRESS_HTTPS_PORT"]) for s in self.cluster.servers}

    def pids(self) -> dict[str, int]:
        return {s.name: s.proc.pid for s in self.cluster.servers if s.proc is not None}


def nodes_serving_ingress(cluster: Cluster) -> bool:
    """Whether every server's node is ready and its ingress enabled."""
    api = cluster.servers[0]
    for server in cluster.servers:
        if server.node_id is None:
            return False
        r = api.get(f"/v1/nodes/{server.node_id}", timeout=5)
        if r.status != 200 or r.body["status"] != "ready":
            return False
        if not (r.body.get("ingress") or {}).get("enabled"):
            return False
    return True


@contextlib.contextmanager
def ingress_cluster(size: int = 3) -> Iterator[IngressCluster]:
    """Pebble and a started cluster whose ``size`` nodes all serve the ingress;
    everything stopped and removed afterwards (logs kept on failure)."""
    reason = docker_unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    root = Path(tempfile.mkdtemp(prefix="heroctl-bench-ingress-"))
    http_ports = [free_port() for _ in range(size)]
    https_ports = [free_port() for _ in range(size)]
    ok = False
    cluster: Cluster | None = None
    try:
        # Pebble's validator connects to 127.0.0.1:<the first node's ingress>.
        with running_pebble(root / "pebble", http_ports[0], free_port()) as pebble:
            env = {
                **BENCH_ENV,
                "HEROCTL_ACME_DIRECTORY": pebble.directory_url,
                "HEROCTL_ACME_CA_BUNDLE": pebble.ca_bundle,
                "HEROCTL_ACME_EMAIL": "ops@bench.test",
            }
            (root / "cluster").mkdir()
            cluster = Cluster(
                root / "cluster",
                size,
                agent=True,
                tls=False,
                env=env,
                agent_cpu=NODE_CPU_MHZ,
                agent_memory=NODE_MEMORY_MB,
            )
            for server, http, https in zip(cluster.servers, http_ports, https_ports, strict=True):
                server.env["HEROCTL_INGRESS_HTTP_PORT"] = str(http)
                server.env["HEROCTL_INGRESS_HTTPS_PORT"] = str(https)
                server.env["HEROCTL_INGRESS_BIND"] = "127.0.0.1"
            log(f"ingress: starting a {size}-server cluster with agents and nginx in {root}")
            cluster.start()
            wait_until(
                lambda: nodes_serving_ingress(cluster),  # type: ignore[arg-type]
                60,
                0.2,
                f"{size} ready nodes serving the ingress",
            )
            yield IngressCluster(cluster, pebble, root)
            ok = True
    finally:
        if cluster is not None:
            t0 = time.monotonic()
            with contextlib.suppress(Exception):
                cluster.stop()  # also removes the containers and reaps each node's nginx
            log(f"ingress: cluster stopped in {time.monotonic() - t0:.1f} s")
            for s in cluster.servers:
                with contextlib.suppress(Exception):
                    s.kill()
                with contextlib.suppress(Exception):
                    s.remove_tasks()
            if not ok:
                for s in cluster.servers:
                    log(
                        f"ingress: {s.name} log tail:\n    "
                        + "\n    ".join(s.log()[-3000:].splitlines())
                    )
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"ingress: failed; logs kept in {root}")


def web_job(
    name: str,
    hosts: list[str],
    count: int,
    *,
    cpu: int = 500,
    memory: int = 32,
    tls: str = "off",
) -> dict[str, Any]:
    """A service whose one group serves ``hosts`` (at most 100) at ``/`` with
    ``count`` busybox httpd allocations, each checked every second."""
    return {
        "name": name,
        "type": "service",
        "groups": [
            {
                "name": "web",
                "count": count,
                "update": {"max_parallel": 4, "min_healthy_time": "1s", "healthy_deadline": "60s"},
                "ingress": [{"host": h, "path": "/", "port": "http", "tls": tls} for h in hosts],
                "tasks": [
                    {
                        "name": "web",
                        "driver": "docker",
                        "image": IMAGE,
                        "command": ["sh", "-c", PAGE],
                        # The driver makes MHz a hard CPU quota: the throughput
                        # job asks for the whole machine so the quota is not
                        # what is measured; the others enough to start fast.
                        "resources": {"cpu": cpu, "memory": memory},
                        "ports": [{"name": "http", "to": 8080}],
                        "check": {
                            "type": "http",
                            "port": "http",
                            "path": "/",
                            "interval": "1s",
                            "timeout": "3s",  # under load, not a reason to leave the ingress
                        },
                        "kill_timeout": "1s",
                    }
                ],
            }
        ],
    }


def submit(server: Server, spec: dict[str, Any]) -> float:
    """POST the job; the monotonic time its 2xx answer arrived."""
    r = server.post("/v1/jobs", spec, timeout=30)
    done = time.monotonic()
    if r.status not in (200, 201):
        raise RuntimeError(f"POST /v1/jobs {spec['name']}: {r.status} {r.raw[:300]!r}")
    return done


def delete_job(server: Server, name: str) -> float:
    r = server.delete(f"/v1/jobs/{name}", timeout=30)
    done = time.monotonic()
    if r.status != 200:
        raise RuntimeError(f"DELETE /v1/jobs/{name}: {r.status} {r.raw[:300]!r}")
    return done


def route_allocations(server: Server, host: str) -> list[dict[str, Any]]:
    """The allocations behind ``host``'s routes, each with ``healthy`` = takes
    traffic (what the ingress model is built from)."""
    r = server.get(f"/v1/ingress/{host}", timeout=5)
    if r.status != 200:
        return []
    return [a for route in r.body["routes"] for a in route["allocations"]]


def serving_ids(server: Server, host: str) -> set[str]:
    return {a["id"] for a in route_allocations(server, host) if a["healthy"]}


def wait_serving(server: Server, host: str, count: int, timeout: float = 90) -> set[str]:
    """Until exactly ``count`` allocations take ``host``'s traffic."""
    return wait_until(
        lambda: (ids := serving_ids(server, host)) and len(ids) == count and ids,
        timeout,
        0.05,
        f"{count} allocations serving {host}",
    )


def host_port_of(server: Server, alloc_id: str) -> int:
    return int(server.get(f"/v1/allocations/{alloc_id}").body["ports"]["http"])
