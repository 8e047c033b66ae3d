"""Scale, plan and restart end to end: a real heroctld with its agent and a
real Docker engine, busybox containers on 127.0.0.1.

Every wait polls a condition with a deadline; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.workloads import IMAGE, docker_unavailable

_SKIP = docker_unavailable()
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(_SKIP is not None, reason=_SKIP or ""),
]


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    import docker

    client = docker.from_env(timeout=60)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("job-operations-docker"), 1, agent=True).start()
    try:
        nodes = wait_until(
            lambda: [n for n in c.servers[0].get("/v1/nodes").body if n["status"] == "ready"],
            30,
            0.2,
            "the node ready",
        )
        NODES.update(n["id"] for n in nodes)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def server(cluster: Cluster) -> Server:
    return cluster.servers[0]


def web_job(name: str, count: int, *, version: str = "1", attempts: int = 3) -> dict[str, Any]:
    return {
        "name": name,
        "groups": [
            {
                "name": "app",
                "count": count,
                "update": {"max_parallel": 1, "min_healthy_time": "1s", "healthy_deadline": "60s"},
                "restart": {"attempts": attempts, "interval": "5m", "delay": "1s"},
                "tasks": [
                    {
                        "name": "web",
                        "driver": "docker",
                        "image": IMAGE,
                        "command": ["httpd", "-f", "-p", "8080", "-h", "/var/www"],
                        "env": {"VERSION": version},
                        "resources": {"cpu": 100, "memory": 32},
                        "ports": [{"name": "http", "to": 8080}],
                        "check": {"type": "http", "port": "http", "path": "/", "interval": "1s"},
                        "kill_timeout": "1s",
                    }
                ],
            }
        ],
    }


NODES: set[str] = set()  # this module's node ids (other clusters may run the same names)


def containers(docker_client: Any, job: str, *, all: bool = False) -> list[Any]:
    found = docker_client.containers.list(all=all, filters={"label": f"heroctl.job={job}"})
    return [k for k in found if k.labels.get("heroctl.node") in NODES]


def live(server: Server, job: str) -> list[dict[str, Any]]:
    allocs = server.get(f"/v1/allocations?job={job}").body
    return [a for a in allocs if a["desired_status"] == "run"]


def wait_healthy(server: Server, job: str, count: int) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        allocs = live(server, job)
        good = [a for a in allocs if a["status"] == "running" and a["healthy"] is True]
        return good if len(good) == count == len(allocs) else None

    return wait_until(ready, 60, 0.2, f"{count} healthy allocations of {job}")


def detail(server: Server, alloc_id: str) -> dict[str, Any]:
    r = server.get(f"/v1/allocations/{alloc_id}")
    assert r.status == 200, r.body
    return r.body


def delete_and_wait_gone(server: Server, docker_client: Any, job: str) -> None:
    assert server.delete(f"/v1/jobs/{job}").status == 200
    wait_until(lambda: not containers(docker_client, job, all=True), 30, 0.2, f"{job} removed")


def test_plan_then_scale_up_and_down(server: Server, docker_client: Any) -> None:
    assert server.post("/v1/jobs", web_job("ops-scale", 1)).status == 201
    (first,) = wait_healthy(server, "ops-scale", 1)
    (first_container,) = containers(docker_client, "ops-scale")
    wait_until(  # the cluster is quiet: the leader has written the deployment's end
        lambda: (
            [d["status"] for d in server.get("/v1/deployments?job=ops-scale").body]
            == ["successful"]
        ),
        30,
        0.2,
        "the first version's deployment successful",
    )

    # The plan of the scale-up says what the scale then does, and writes nothing.
    index = server.get("/v1/cluster/status").body["commit_index"]
    plan = server.post("/v1/jobs/ops-scale/plan", web_job("ops-scale", 3)).body
    assert {k: v for k, v in plan["groups"]["app"].items() if v} == {
        "place": 2,
        "in_place_update": 1,
    }
    env = server.post("/v1/jobs/ops-scale/plan", web_job("ops-scale", 1, version="2")).body
    assert env["groups"]["app"]["destructive_update"] == 1 and env["changes"] is True
    same = server.post("/v1/jobs/ops-scale/plan", web_job("ops-scale", 1)).body
    assert same["diff"]["type"] == "none" and same["changes"] is False
    assert server.get("/v1/cluster/status").body["commit_index"] == index
    assert server.get("/v1/jobs/ops-scale").body["version"] == 0

    r = server.post("/v1/jobs/ops-scale/scale", {"group": "app", "count": 3})
    assert r.status == 200, r.body
    allocs = wait_healthy(server, "ops-scale", 3)
    assert first["id"] in {a["id"] for a in allocs}
    wait_until(lambda: len(containers(docker_client, "ops-scale")) == 3, 30, 0.2, "3 containers")
    first_container.reload()  # the first one kept running through the scale: in place
    assert first_container.status == "running"
    assert detail(server, first["id"])["task_states"]["web"]["restarts"] == 0

    r = server.post("/v1/jobs/ops-scale/scale", {"count": 1})
    assert r.status == 200 and r.body["previous_count"] == 3
    wait_healthy(server, "ops-scale", 1)
    wait_until(
        lambda: len(containers(docker_client, "ops-scale", all=True)) == 1,
        30,
        0.2,
        "2 containers stopped and removed",
    )
    versions = server.get("/v1/jobs/ops-scale/versions").body
    assert [v["groups"][0]["count"] for v in versions] == [1, 3, 1]
    delete_and_wait_gone(server, docker_client, "ops-scale")


def test_restart_starts_a_new_container_in_the_same_allocation(
    server: Server, docker_client: Any
) -> None:
    # One restart allowed by the policy: user restarts must not use it up.
    assert server.post("/v1/jobs", web_job("ops-restart", 1, attempts=1)).status == 201
    (alloc,) = wait_healthy(server, "ops-restart", 1)
    (before,) = containers(docker_client, "ops-restart")

    r = server.post(f"/v1/allocations/{alloc['id']}/restart")
    assert r.status == 200, r.body

    def restarted(old: str, n: int) -> Any:
        now = containers(docker_client, "ops-restart")
        states = detail(server, alloc["id"])["task_states"]["web"]
        fresh = len(now) == 1 and now[0].id != old
        return (
            now[0] if fresh and states["restarts"] == n and states["state"] == "running" else None
        )

    after = wait_until(lambda: restarted(before.id, 1), 30, 0.2, "a new container")
    assert after.labels["heroctl.alloc_id"] == alloc["id"]
    doc = detail(server, alloc["id"])
    assert doc["status"] == "running" and doc["node"] == alloc["node"]
    assert [a["id"] for a in live(server, "ops-restart")] == [alloc["id"]]

    def events() -> list[tuple[str, Any, str]]:
        return [
            (e["type"], e.get("task"), e["message"]) for e in detail(server, alloc["id"])["events"]
        ]

    # the restart is counted as it begins and its event comes once it started:
    # they may reach the server in two reports
    seen = wait_until(
        lambda: (found := events()) and any(kind == "restarted" for kind, _, _ in found) and found,
        30,
        0.2,
        "the restarted event",
    )
    assert ("restarting", "web", "restart requested by a user") in seen
    wait_healthy(server, "ops-restart", 1)  # it answers its check again

    # The CLI waits for the node to report it done.
    runner = CliRunner(env={"HEROCTL_ADDR": None, "HEROCTL_TOKEN": None})
    base = ["--address", server.url, "--token", server.token or ""]
    result = runner.invoke(cli, [*base, "alloc", "restart", alloc["id"][:8], "--task", "web"])
    assert result.exit_code == 0, result.output
    assert "task 'web' restarted in place (2 restarts in all)" in result.stdout
    third = wait_until(lambda: restarted(after.id, 2), 30, 0.2, "another new container")

    # The policy's one attempt is still there: a crash is restarted, not failed...
    third.kill()
    wait_until(lambda: restarted(third.id, 3), 30, 0.2, "the policy's restart")
    assert detail(server, alloc["id"])["status"] == "running"
    # ...and used up now: the next crash fails the allocation.
    (fourth,) = containers(docker_client, "ops-restart")
    fourth.kill()
    wait_until(
        lambda: detail(server, alloc["id"])["status"] == "failed", 30, 0.2, "the allocation failed"
    )
    refused = server.post(f"/v1/allocations/{alloc['id']}/restart")
    assert refused.status == 409 and refused.body["error"] == "allocation_not_running"
    delete_and_wait_gone(server, docker_client, "ops-restart")


def test_restart_of_an_unknown_allocation(server: Server) -> None:
    r = server.post("/v1/allocations/0123456789abcdef/restart", {"task": "web"})
    assert r.status == 404 and r.body["error"] == "allocation_not_found"
