"""The deployments benchmark's cluster and API helpers: three real heroctld
servers (plain HTTP API) whose embedded agents run Docker tasks of the local
busybox image and each their own nginx ingress on its own 127.0.0.1 port
(no ACME server: every route is plain HTTP), the job it deploys, and the
long polls that follow a deployment to its end.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import BENCH_ENV, log
from bench.ingress_cluster import nodes_serving_ingress
from tests.support.cluster import Cluster, Server, free_port, wait_until
from tests.support.workloads import IMAGE, docker_unavailable

# Each allocation's page is "<alloc id> <VERSION env>": a response says who
# served it; /cgi-bin/slow answers the same after 0.3 s (requests in flight).
SLOW_CGI = "#!/bin/sh\\necho Content-Type: text/plain\\necho\\nsleep 0.3\\necho $HEROCTL_ALLOC_ID $VERSION\\n"
PAGE = (
    "mkdir -p /tmp/www/cgi-bin && echo $HEROCTL_ALLOC_ID $VERSION > /tmp/www/index.html && "
    f"printf '{SLOW_CGI}' > /tmp/www/cgi-bin/slow && chmod +x /tmp/www/cgi-bin/slow && "
    "exec httpd -f -p 8080 -h /tmp/www"
)
NODE_CPU_MHZ = 40_000  # per node: room for 20 tasks and their canaries
NODE_MEMORY_MB = 8192
TASK_CPU_MHZ = 500  # the driver makes MHz a hard CFS quota: enough to start fast
DONE = ("successful", "failed", "cancelled")


@dataclass
class DeployCluster:
    cluster: Cluster
    root: Path

    @property
    def api(self) -> Server:
        return self.cluster.servers[0]

    def http_ports(self) -> dict[str, int]:
        return {s.name: int(s.env["HEROCTL_INGRESS_HTTP_PORT"]) for s in self.cluster.servers}

    def node_ids(self) -> set[str]:
        return {s.node_id for s in self.cluster.servers if s.node_id}


@contextlib.contextmanager
def deploy_cluster(size: int = 3) -> Iterator[DeployCluster]:
    """A started cluster whose ``size`` nodes run Docker tasks and serve the
    ingress; stopped afterwards, its containers and nginx removed (logs kept
    when something failed)."""
    reason = docker_unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    root = Path(tempfile.mkdtemp(prefix="heroctl-bench-deployments-"))
    cluster = Cluster(
        root,
        size,
        agent=True,
        tls=False,
        env=dict(BENCH_ENV),
        agent_cpu=NODE_CPU_MHZ,
        agent_memory=NODE_MEMORY_MB,
    )
    for server in cluster.servers:
        server.env["HEROCTL_INGRESS_HTTP_PORT"] = str(free_port())
        server.env["HEROCTL_INGRESS_HTTPS_PORT"] = str(free_port())
        server.env["HEROCTL_INGRESS_BIND"] = "127.0.0.1"
    ok = False
    try:
        log(f"deployments: starting a {size}-server cluster with agents and nginx in {root}")
        cluster.start()
        wait_until(
            lambda: nodes_serving_ingress(cluster),
            60,
            0.2,
            f"{size} ready nodes serving the ingress",
        )
        yield DeployCluster(cluster, root)
        ok = True
    finally:
        t0 = time.monotonic()
        with contextlib.suppress(Exception):
            cluster.stop()  # also removes the containers and reaps each node's nginx
        log(f"deployments: cluster stopped in {time.monotonic() - t0:.1f} s")
        for s in cluster.servers:
            with contextlib.suppress(Exception):
                s.kill()
            with contextlib.suppress(Exception):
                s.remove_tasks()
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for s in cluster.servers:
                tail = s.log()[-3000:].splitlines()
                log(f"deployments: {s.name} log tail:\n    " + "\n    ".join(tail))
            log(f"deployments: failed; logs kept in {root}")


def web_job(
    name: str,
    version: str,
    count: int,
    *,
    host: str | None = None,
    check_path: str = "/",
    **update: Any,
) -> dict[str, Any]:
    """``count`` busybox httpd replicas (env VERSION=``version``), each checked
    over http every second; ``update`` is the group's update block (over
    max_parallel 1, min_healthy_time 1s, healthy_deadline 60s); ``host``: an
    ingress route to them."""
    group: dict[str, Any] = {
        "name": "web",
        "count": count,
        "update": {"max_parallel": 1, "min_healthy_time": "1s", "healthy_deadline": "60s"} | update,
        "restart": {"attempts": 3, "interval": "5m", "delay": "1s"},
        "tasks": [
            {
                "name": "web",
                "driver": "docker",
                "image": IMAGE,
                "command": ["sh", "-c", PAGE],
                "env": {"VERSION": version},
                "resources": {"cpu": TASK_CPU_MHZ, "memory": 32},
                "ports": [{"name": "http", "to": 8080}],
                "check": {
                    "type": "http",
                    "port": "http",
                    "path": check_path,
                    "interval": "1s",
                    "timeout": "2s",
                },
                "kill_timeout": "1s",
            }
        ],
    }
    if host is not None:
        group["ingress"] = [{"host": host, "path": "/", "port": "http", "tls": "off"}]
    return {"name": name, "type": "service", "groups": [group]}


def submit(server: Server, spec: dict[str, Any]) -> tuple[float, float, int]:
    """POST the job: (monotonic time sent, wall time sent, the new version)."""
    t0, wall = time.monotonic(), time.time()
    r = server.post("/v1/jobs", spec, timeout=30)
    if r.status not in (200, 201):
        raise RuntimeError(f"POST /v1/jobs {spec['name']}: {r.status} {r.raw[:300]!r}")
    return t0, wall, int(r.body["version"])


def deployment_for(server: Server, job: str, version: int, timeout: float = 30) -> dict[str, Any]:
    """The deployment of ``job``'s ``version`` (long polls the job's list until it exists)."""
    deadline = time.monotonic() + timeout
    index = 0
    while True:
        r = server.get(f"/v1/deployments?job={job}&index={index}&wait=5s", timeout=20)
        if r.status != 200:
            raise RuntimeError(f"GET /v1/deployments?job={job}: {r.status} {r.raw[:300]!r}")
        for doc in r.body:
            if doc["version"] == version:
                return doc
        if time.monotonic() > deadline:
            raise TimeoutError(f"no deployment of {job} version {version} after {timeout:g}s")
        index = int(r.header("X-HeroCtl-Index") or 0)


def wait_deployment(
    server: Server,
    dep_id: str,
    statuses: tuple[str, ...],
    timeout: float,
    seen: list[tuple[float, str]] | None = None,
) -> tuple[float, dict[str, Any]]:
    """Long poll ``GET /v1/deployments/:id`` until its status is one of
    ``statuses`` (or it ended otherwise: returned too, the caller decides).
    Returns (monotonic time seen, the document); every status change seen is
    appended to ``seen`` as (monotonic time, status)."""
    deadline = time.monotonic() + timeout
    index = 0
    last = None
    while True:
        left = max(1.0, min(30.0, deadline - time.monotonic()))
        r = server.get(
            f"/v1/deployments/{dep_id}?index={index}&wait={left:.0f}s", timeout=left + 15
        )
        now = time.monotonic()
        if r.status != 200:
            raise RuntimeError(f"GET /v1/deployments/{dep_id}: {r.status} {r.raw[:300]!r}")
        doc = r.body
        if doc["status"] != last:
            last = doc["status"]
            if seen is not None:
                seen.append((now, last))
        if doc["status"] in statuses or doc["status"] in DONE:
            return now, doc
        if now > deadline:
            raise TimeoutError(f"deployment {dep_id} still {doc['status']} after {timeout:g}s")
        index = int(r.header("X-HeroCtl-Index") or 0)


def wait_reverted(
    server: Server, job: str, version: int, timeout: float
) -> tuple[float, dict[str, Any]]:
    """Long poll the job's deployments until ``version``'s has ended (successful
    or not): (monotonic time seen, the document)."""
    deadline = time.monotonic() + timeout
    index = 0
    while True:
        left = max(1.0, min(30.0, deadline - time.monotonic()))
        r = server.get(
            f"/v1/deployments?job={job}&index={index}&wait={left:.0f}s", timeout=left + 15
        )
        now = time.monotonic()
        if r.status != 200:
            raise RuntimeError(f"GET /v1/deployments?job={job}: {r.status} {r.raw[:300]!r}")
        for doc in r.body:
            if doc["version"] == version and doc["status"] in DONE:
                return now, doc
        if now > deadline:
            raise TimeoutError(f"version {version} of {job} not deployed after {timeout:g}s")
        index = int(r.header("X-HeroCtl-Index") or 0)


def wait_allocations(
    server: Server,
    job: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float,
    what: str,
) -> tuple[float, list[dict[str, Any]]]:
    """Long poll ``GET /v1/allocations?job=`` until ``done(allocations)``:
    (monotonic time seen, the allocations)."""
    deadline = time.monotonic() + timeout
    index = 0
    while True:
        r = server.get(f"/v1/allocations?job={job}&index={index}&wait=5s", timeout=20)
        now = time.monotonic()
        if r.status != 200:
            raise RuntimeError(f"GET /v1/allocations?job={job}: {r.status} {r.raw[:300]!r}")
        if done(r.body):
            return now, r.body
        if now > deadline:
            raise TimeoutError(f"{job}: not {what} after {timeout:g}s")
        index = int(r.header("X-HeroCtl-Index") or 0)


def all_healthy(version: int, count: int) -> Callable[[list[dict[str, Any]]], bool]:
    """Exactly ``count`` live allocations, all of ``version`` and healthy."""

    def check(allocs: list[dict[str, Any]]) -> bool:
        live = [a for a in allocs if a["desired_status"] == "run"]
        return len(live) == count and all(
            a["job_version"] == version and a["status"] == "running" and a["healthy"] is True
            for a in live
        )

    return check


def older_gone(version: int) -> Callable[[list[dict[str, Any]]], bool]:
    """No allocation of another version runs or is starting any more."""

    def check(allocs: list[dict[str, Any]]) -> bool:
        return not any(
            a["job_version"] != version and a["status"] in ("running", "pending") for a in allocs
        )

    return check


def allocation_details(server: Server, job: str) -> list[dict[str, Any]]:
    """Every allocation of the job with its events (``GET /v1/allocations/:id``)."""
    r = server.get(f"/v1/allocations?job={job}", timeout=10)
    out = []
    for a in r.body or ():
        d = server.get(f"/v1/allocations/{a['id']}", timeout=10)
        if d.status == 200:
            out.append(d.body)
    return out


def delete_job(server: Server, name: str, timeout: float = 60) -> None:
    """Delete the job and wait until none of its allocations runs."""
    r = server.delete(f"/v1/jobs/{name}", timeout=30)
    if r.status != 200:
        raise RuntimeError(f"DELETE /v1/jobs/{name}: {r.status} {r.raw[:300]!r}")

    def gone(allocs: list[dict[str, Any]]) -> bool:
        return all(a["status"] not in ("running", "pending") for a in allocs)

    wait_allocations(server, name, gone, timeout, "stopped")
