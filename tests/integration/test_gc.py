"""Allocation garbage collection end to end (heroctld.controllers.gc): three
real heroctld processes with their agents, busybox containers on a real
Docker engine, and a GC threshold of a few seconds.

Stopped allocations leave the replicated state once past the threshold,
except the newest one of the group (`keep_per_group = 1`); a collected
allocation's logs are still readable, by its full id, from every server;
a deleted job's allocations all go. Every wait polls a condition with a
deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, Server, wait_until
from tests.support.workloads import IMAGE, docker_unavailable

_SKIP = docker_unavailable()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]

THRESHOLD = 3  # seconds a stopped allocation stays in the state
GC_ENV = {
    "HEROCTL_GC_ALLOC_THRESHOLD": str(THRESHOLD),
    "HEROCTL_GC_INTERVAL": "0.5",
    "HEROCTL_GC_KEEP_PER_GROUP": "1",
}


def greeter(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "service",
        "groups": [
            {
                "name": "g",
                "count": 1,
                "restart": {"attempts": 3, "interval": "5m", "delay": "1s"},
                "tasks": [
                    {
                        "name": "main",
                        "driver": "docker",
                        "image": IMAGE,
                        "command": ["sh", "-c", "echo hello; while true; do sleep 1; done"],
                        "resources": {"cpu": 100, "memory": 32},
                        "kill_timeout": "1s",
                    }
                ],
            }
        ],
    }


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 3, agent=True, env=GC_ENV).start()
    try:
        wait_until(
            lambda: (
                len([n for n in c.servers[0].get("/v1/nodes").body if n["status"] == "ready"]) == 3
            ),
            30,
            0.2,
            "3 ready nodes",
        )
        yield c
    finally:
        c.stop()


def allocs_of(server: Server, job: str) -> list[dict[str, Any]]:
    r = server.get(f"/v1/allocations?job={job}")
    assert r.status == 200, r.body
    return r.body


def says_hello(server: Server, alloc_id: str) -> bool:
    r = server.get(f"/v1/logs/{alloc_id}?lines=all&type=stdout")
    return r.status == 200 and any(d["line"] == "hello" for d in r.body)


def stop_the_running_one(s: Server, job: str) -> str:
    """Wait for the job's one running allocation to log its line, stop it,
    wait until its node reports it complete; returns its id."""

    def running() -> str | None:
        live = [
            a
            for a in allocs_of(s, job)
            if a["desired_status"] == "run" and a["status"] == "running"
        ]
        return live[0]["id"] if len(live) == 1 else None

    alloc_id = wait_until(running, 60, 0.2, "a running allocation")
    wait_until(lambda: says_hello(s, alloc_id), 30, 0.2, "its first line in the logs")
    assert s.post(f"/v1/allocations/{alloc_id}/stop").status == 200
    wait_until(
        lambda: s.get(f"/v1/allocations/{alloc_id}").body["status"] == "complete",
        60,
        0.2,
        "the allocation to complete",
    )
    return alloc_id


def test_stopped_allocations_are_collected_and_their_logs_stay_readable(
    cluster: Cluster,
) -> None:
    s = cluster.servers[0]
    r = s.post("/v1/jobs", greeter("gc"))
    assert r.status in (200, 201), r.body
    stopped = [stop_the_running_one(s, "gc") for _ in range(3)]

    # The two oldest go; the newest stopped one stays, and so does the live one.
    def collected() -> list[dict[str, Any]] | None:
        allocs = allocs_of(s, "gc")
        ids = {a["id"] for a in allocs}
        return allocs if not ids & set(stopped[:2]) else None

    allocs = wait_until(collected, 30 + THRESHOLD, 0.2, "the two oldest allocations collected")
    assert stopped[2] in {a["id"] for a in allocs}
    assert [a["desired_status"] for a in allocs].count("run") == 1
    for server in cluster.servers:  # every server applied the same removal
        assert server.get(f"/v1/allocations/{stopped[0]}").status == 404
        assert stopped[1] not in {a["id"] for a in allocs_of(server, "gc")}
        # Its logs stay on the node that ran it, found by the full id from anywhere.
        assert says_hello(server, stopped[0]), server.name

    # A deleted job keeps nothing once past the threshold.
    assert s.delete("/v1/jobs/gc").status == 200
    wait_until(lambda: not allocs_of(s, "gc"), 60 + THRESHOLD, 0.2, "every allocation collected")
    assert all(says_hello(server, stopped[2]) for server in cluster.servers)
