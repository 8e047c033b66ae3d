"""Workloads end to end (issue 4): real heroctld processes with their agents,
a real Docker engine, containers reached on 127.0.0.1.

Every wait polls a condition with a deadline. The tests that change a
cluster for good (kill -9, a node stopped, a drain) get a cluster of their
own; the others share one per module and use distinct job names.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, Server, wait_until
from tests.support.ports import port_range
from tests.support.worker import Worker
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


# --- helpers ------------------------------------------------------------------------------


def web_job(
    name: str,
    count: int = 3,
    *,
    version: str = "1",
    memory: int = 32,
    restart: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    task: dict[str, Any] = {
        "name": "web",
        "driver": "docker",
        "image": IMAGE,
        "command": command or ["httpd", "-f", "-p", "8080", "-h", "/var/www"],
        "env": {"VERSION": version},
        "resources": {"cpu": 100, "memory": memory},
        "ports": [{"name": "http", "to": 8080}],
        "check": {"type": "http", "port": "http", "path": "/", "interval": "1s", "timeout": "1s"},
        "kill_timeout": "1s",
    }
    if secrets:
        task["secrets"] = secrets
    return {
        "name": name,
        "type": "service",
        "groups": [
            {
                "name": "app",
                "count": count,
                "update": {"max_parallel": 1, "min_healthy_time": "1s", "healthy_deadline": "60s"},
                "restart": restart or {"attempts": 3, "interval": "5m", "delay": "1s"},
                "tasks": [task],
            }
        ],
    }


def api(c: Cluster) -> Server:
    """A live server to talk to (writes are forwarded to the leader)."""
    return c.live()[0]


def submit(c: Cluster, job: dict[str, Any]) -> dict[str, Any]:
    r = api(c).post("/v1/jobs", job)
    assert r.status in (200, 201), r.body
    return r.body


def allocations(c: Cluster, job: str) -> list[dict[str, Any]]:
    r = api(c).get(f"/v1/allocations?job={job}")
    assert r.status == 200, r.body
    return r.body


def alloc_detail(c: Cluster, alloc_id: str) -> dict[str, Any]:
    r = api(c).get(f"/v1/allocations/{alloc_id}")
    assert r.status == 200, r.body
    return r.body


def live(c: Cluster, job: str) -> list[dict[str, Any]]:
    return [a for a in allocations(c, job) if a["desired_status"] == "run"]


def node_ids(c: Cluster) -> set[str]:
    return {s.node_id for s in c.servers if s.node_id}


def containers(docker_client: Any, c: Cluster, job: str, *, all: bool = False) -> list[Any]:
    """This cluster's containers of `job` (running only unless `all`)."""
    ours = node_ids(c)
    found = docker_client.containers.list(all=all, filters={"label": f"heroctl.job={job}"})
    return [k for k in found if k.labels.get("heroctl.node") in ours]


def fetch(port: int, path: str = "/") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
        return r.read().decode()


def wait_healthy(c: Cluster, job: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    """`count` allocations of `job` running and reported healthy, and no more."""

    def ready() -> list[dict[str, Any]] | None:
        allocs = live(c, job)
        good = [a for a in allocs if a["status"] == "running" and a["healthy"] is True]
        return good if len(good) == count and len(allocs) == count else None

    return wait_until(ready, timeout, 0.2, f"{count} healthy allocations of {job}")


def wait_nodes(c: Cluster, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        nodes = api(c).get("/v1/nodes").body
        up = [n for n in nodes if n["status"] == "ready"]
        return nodes if len(up) >= count else None

    return wait_until(ready, timeout, 0.2, f"{count} ready nodes")


def server_of(c: Cluster, node_id: str) -> Server:
    return next(s for s in c.servers if s.node_id == node_id)


def holds(check: Callable[[], None], seconds: float, interval: float = 0.25) -> None:
    """`check` keeps passing for `seconds` (a property over time, not a sleep)."""
    deadline = time.monotonic() + seconds
    while True:
        check()
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


def agent_cluster(root: Path, size: int = 3, **kw: Any) -> Cluster:
    c = Cluster(root, size, agent=True, **kw).start()
    wait_nodes(c, size)
    return c


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = agent_cluster(tmp_path_factory.mktemp("workloads"))
    try:
        yield c
    finally:
        c.stop()


def delete_and_wait_gone(c: Cluster, docker_client: Any, job: str) -> None:
    r = api(c).delete(f"/v1/jobs/{job}")
    assert r.status == 200, r.body
    wait_until(
        lambda: not containers(docker_client, c, job, all=True),
        30,
        0.2,
        f"every container of {job} removed",
    )


# --- the tests ------------------------------------------------------------------------------


def test_three_replicas_run_on_two_nodes_at_least_and_answer(
    shared: Cluster, docker_client: Any
) -> None:
    submit(shared, web_job("web3"))
    allocs = wait_healthy(shared, "web3", 3)
    running = containers(docker_client, shared, "web3")
    assert len(running) == 3
    assert len({a["node"] for a in allocs}) >= 2
    assert {k.labels["heroctl.alloc_id"] for k in running} == {a["id"] for a in allocs}
    for a in allocs:
        detail = alloc_detail(shared, a["id"])
        port = detail["ports"]["http"]
        assert "heroctl test image" in fetch(port)
        container = next(k for k in running if k.labels["heroctl.alloc_id"] == a["id"])
        bindings = container.attrs["HostConfig"]["PortBindings"]["8080/tcp"]
        assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
        assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] in ("no", "")
        assert container.attrs["HostConfig"]["Memory"] == 32 * 2**20
        assert detail["task_states"]["web"]["state"] == "running"
        assert [e["type"] for e in detail["events"]][:2] == ["placed", "started"]
    delete_and_wait_gone(shared, docker_client, "web3")


def test_scale_up_and_down(shared: Cluster, docker_client: Any) -> None:
    submit(shared, web_job("scale", 2))
    wait_healthy(shared, "scale", 2)
    submit(shared, web_job("scale", 5))
    allocs = wait_healthy(shared, "scale", 5)
    assert len({a["node"] for a in allocs}) == 3  # spread over every node
    wait_until(lambda: len(containers(docker_client, shared, "scale")) == 5, 30, 0.2, "5 up")
    submit(shared, web_job("scale", 1))
    wait_healthy(shared, "scale", 1)
    wait_until(
        lambda: len(containers(docker_client, shared, "scale", all=True)) == 1,
        30,
        0.2,
        "4 containers stopped and removed",
    )
    wait_until(
        lambda: all(
            a["status"] == "complete"
            for a in allocations(shared, "scale")
            if a["desired_status"] == "stop"
        ),
        30,
        0.2,
        "stopped allocations complete",
    )
    stopped = [a for a in allocations(shared, "scale") if a["desired_status"] == "stop"]
    assert len(stopped) >= 4  # (a count change also counts as a new job version today)
    delete_and_wait_gone(shared, docker_client, "scale")


def test_rolling_update_replaces_one_at_a_time(shared: Cluster, docker_client: Any) -> None:
    submit(shared, web_job("roll", 3, version="1"))
    first = wait_healthy(shared, "roll", 3)
    old_ids = {a["id"] for a in first}
    submit(shared, web_job("roll", 3, version="2"))
    min_running = 3
    max_total = 0
    mixed = False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        running = containers(docker_client, shared, "roll")
        envs = {
            k.labels["heroctl.alloc_id"]: "VERSION=2" in k.attrs["Config"]["Env"] for k in running
        }
        healthy = [a for a in live(shared, "roll") if a["healthy"] is True]
        min_running = min(min_running, len(running))
        max_total = max(max_total, len(running))
        mixed = mixed or (any(envs.values()) and not all(envs.values()))
        if (
            len(running) == 3
            and all(envs.values())
            and len(healthy) == 3
            and not (old_ids & set(envs))
        ):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the update did not finish: {live(shared, 'roll')}")
    assert mixed, "old and new versions never ran side by side: not a rolling update"
    assert min_running >= 2, f"the update took down more than max_parallel: {min_running}"
    assert max_total <= 4
    versions = {a["job_version"] for a in live(shared, "roll")}
    assert len(versions) == 1 and versions != {first[0]["job_version"]}
    delete_and_wait_gone(shared, docker_client, "roll")


def test_delete_job_leaves_no_container(shared: Cluster, docker_client: Any) -> None:
    submit(shared, web_job("gone", 3))
    wait_healthy(shared, "gone", 3)
    assert len(containers(docker_client, shared, "gone")) == 3
    delete_and_wait_gone(shared, docker_client, "gone")
    wait_until(
        lambda: all(a["status"] == "complete" for a in allocations(shared, "gone")),
        30,
        0.2,
        "allocations complete",
    )


def test_killed_container_is_restarted_by_the_agent_per_policy(
    shared: Cluster, docker_client: Any
) -> None:
    job = web_job("crash", 1, restart={"attempts": 2, "interval": "5m", "delay": "1s"})
    submit(shared, job)
    (alloc,) = wait_healthy(shared, "crash", 1)
    for n in (1, 2):
        (victim,) = containers(docker_client, shared, "crash")
        victim.kill()  # docker kill: SIGKILL, exit 137; Docker itself restarts nothing

        def restarted(n: int = n, old: str = victim.id) -> bool:
            now = containers(docker_client, shared, "crash")
            states = alloc_detail(shared, alloc["id"])["task_states"]["web"]
            return (
                len(now) == 1
                and now[0].id != old
                and states["restarts"] == n
                and states["state"] == "running"
            )

        wait_until(restarted, 30, 0.2, f"restart {n}")
    detail = alloc_detail(shared, alloc["id"])
    kinds = [e["type"] for e in detail["events"]]
    assert kinds.count("restarted") == 2 and "exited" in kinds
    assert any("137" in e["message"] for e in detail["events"] if e["type"] == "exited")
    # The budget (2 restarts in 5 minutes) is spent: the next exit fails it.
    (victim,) = containers(docker_client, shared, "crash")
    victim.kill()
    wait_until(lambda: alloc_detail(shared, alloc["id"])["status"] == "failed", 30, 0.2, "failed")
    detail = alloc_detail(shared, alloc["id"])
    assert detail["task_states"]["web"]["failed"] is True
    assert any("giving up" in e["message"] for e in detail["events"])
    api(shared).delete("/v1/jobs/crash")
    wait_until(lambda: not containers(docker_client, shared, "crash", all=True), 30, 0.2, "cleanup")


def test_placement_failure_is_readable(shared: Cluster) -> None:
    submit(shared, web_job("huge", 1, memory=4096))  # every node offers 1024 MB

    def failure() -> str | None:
        job = api(shared).get("/v1/jobs/huge").body
        failures = job.get("placement_failures") or []
        return failures[0]["reason"] if failures else None

    reason = wait_until(failure, 20, 0.2, "a placement failure")
    assert "4096 MB" in reason and "3 nodes evaluated" in reason, reason
    assert allocations(shared, "huge") == []
    api(shared).delete("/v1/jobs/huge")


def test_secret_reaches_the_env_and_no_file(shared: Cluster, docker_client: Any) -> None:
    value = "pw-" + os.urandom(12).hex()
    r = api(shared).post("/v1/secrets", {"name": "db_password", "value": value})
    assert r.status in (200, 201), r.body
    submit(shared, web_job("secret", 1, secrets={"DB_PASSWORD": "db_password"}))
    wait_healthy(shared, "secret", 1)
    (container,) = containers(docker_client, shared, "secret")
    # The task's own environment (its process, not `docker exec`'s) has it.
    out = container.exec_run(
        ["sh", "-c", "for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ; done"]
    ).output.decode()
    assert f"DB_PASSWORD={value}" in out
    # ... and no file on the node does: not the engine's container config
    # (inspect), its directory, its writable layer, the daemons' data or logs.
    container.reload()
    assert value not in str(container.attrs)
    places = [
        Path("/var/lib/docker/containers") / container.id,
        Path(container.attrs["GraphDriver"]["Data"].get("UpperDir", "/nonexistent")),
        shared.root,
    ]
    for place in places:
        for path in place.rglob("*") if place.exists() else ():
            if path.is_file() and not path.is_symlink():
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                assert value.encode() not in data, f"the secret is written in {path}"
    delete_and_wait_gone(shared, docker_client, "secret")


# --- tests that change a cluster for good: each gets its own ----------------------------------


def test_kill9_ten_times_restarts_nothing(tmp_path: Path, docker_client: Any) -> None:
    c = agent_cluster(tmp_path)
    try:
        submit(c, web_job("steady", 3))
        allocs = wait_healthy(c, "steady", 3)
        before = {
            k.id: k.attrs["State"]["StartedAt"] for k in containers(docker_client, c, "steady")
        }
        assert len(before) == 3
        # The server whose agent runs the most of them.
        counts: dict[str, int] = {}
        for a in allocs:
            counts[a["node"]] = counts.get(a["node"], 0) + 1
        victim = server_of(c, max(counts, key=lambda n: counts[n]))

        def unchanged() -> None:
            now = containers(docker_client, c, "steady", all=True)
            assert {k.id: k.attrs["State"]["StartedAt"] for k in now} == before
            assert all(k.status == "running" for k in now)

        for round_ in range(10):
            registrations = victim.log().count("agent: registered node")
            victim.kill()  # SIGKILL: the embedded agent dies with the daemon
            unchanged()
            victim.start(peers=c.peers)
            wait_until(
                lambda n=registrations: victim.log().count("agent: registered node") > n,
                30,
                0.1,
                f"agent registered again (round {round_ + 1})",
            )
            # It watched, listed and reconciled: still the same containers.
            holds(unchanged, 2.5)
        c.wait_ready()
        for a in live(c, "steady"):
            detail = alloc_detail(c, a["id"])
            assert detail["status"] == "running"
            assert detail["task_states"]["web"]["restarts"] == 0
            assert not any(e["type"] in ("restarted", "exited") for e in detail["events"])
        assert len(live(c, "steady")) == 3
    finally:
        c.stop()


def test_node_stopped_for_good_moves_its_allocations(tmp_path: Path, docker_client: Any) -> None:
    c = agent_cluster(tmp_path)
    try:
        submit(c, web_job("move", 3))
        allocs = wait_healthy(c, "move", 3)
        # A follower's node: a new leader would (rightly) grant every node a
        # fresh TTL, which is not what this measures.
        leader = c.leader()
        victim_node = next(a["node"] for a in allocs if server_of(c, a["node"]) is not leader)
        victim = server_of(c, victim_node)
        ttl = 10.0
        started = time.monotonic()
        victim.kill()  # for good: daemon and agent gone at once

        def moved() -> list[dict[str, Any]] | None:
            allocs = live(c, "move")
            good = [
                a
                for a in allocs
                if a["status"] == "running" and a["node"] != victim_node and a["healthy"]
            ]
            return good if len(good) == 3 and len(allocs) == 3 else None

        # TTL, then placement, container start, checks and min_healthy_time (1 s):
        # the deadline is the bound (how fast it is belongs to bench/, a loaded
        # machine starts containers slowly).
        wait_until(moved, ttl + 30, 0.2, "allocations replaced on the other nodes")
        print(f"\nreplaced {time.monotonic() - started:.1f}s after the kill (TTL {ttl:g}s)")
        lost = [
            a
            for a in allocations(c, "move")
            if a["node"] == victim_node and a["desired_status"] == "stop"
        ]
        assert lost and all(a["status"] == "lost" for a in lost)
        nodes = {n["id"]: n for n in api(c).get("/v1/nodes").body}
        assert nodes[victim_node]["status"] == "down"
        orphan = [
            k
            for k in containers(docker_client, c, "move")
            if k.labels["heroctl.node"] == victim_node
        ]
        assert orphan  # its tasks outlived it (nobody was there to stop them)
        # The job is deleted while the node is down; when it comes back, its
        # agent finds its old container wanted by nobody and removes it.
        assert api(c).delete("/v1/jobs/move").status == 200
        victim.start(peers=c.peers)
        wait_until(
            lambda: not containers(docker_client, c, "move", all=True),
            40,
            0.2,
            "every container of the deleted job gone, the returning node's too",
        )
        wait_nodes(c, 3)
    finally:
        c.stop()


def test_drain_moves_allocations_and_leaves_the_node_ineligible(
    tmp_path: Path, docker_client: Any
) -> None:
    # Deadlines: each migration waits for its replacement's health (a check
    # every second, then min_healthy_time), one at a time (max_parallel 1);
    # on a loaded 2-core machine Docker alone may take many seconds per start.
    c = agent_cluster(tmp_path)
    try:
        submit(c, web_job("drain", 3))
        allocs = wait_healthy(c, "drain", 3, timeout=120)
        node = allocs[0]["node"]
        r = api(c).post(f"/v1/nodes/{node}/drain", {"deadline_seconds": 60})
        assert r.status == 200, r.body

        def drained() -> bool:
            allocs = live(c, "drain")
            return (
                len(allocs) == 3
                and all(a["node"] != node and a["status"] == "running" for a in allocs)
                and all(
                    k.labels["heroctl.node"] != node
                    for k in containers(docker_client, c, "drain", all=True)
                )
            )

        wait_until(drained, 120, 0.2, "the node drained")
        wait_healthy(c, "drain", 3, timeout=120)  # the replacements are healthy
        detail = wait_until(
            lambda: (d := api(c).get(f"/v1/nodes/{node}").body)["drain"] is None and d,
            60,
            0.2,
            "drain complete",
        )
        assert detail["eligibility"] == "ineligible"
        # New replicas avoid the ineligible node. Placement is what this is
        # about: wait until they run, not for their health (a check interval
        # plus min_healthy_time more, or a restart if a start failed under
        # load), and look at every allocation wanted running, whatever its state.
        submit(c, web_job("drain", 5))

        def placed() -> list[dict[str, Any]] | None:
            allocs = live(c, "drain")
            running = [a for a in allocs if a["status"] == "running"]
            misplaced = any(a["node"] == node for a in allocs)  # stop waiting: it failed
            return allocs if misplaced or len(running) == 5 else None

        allocs = wait_until(placed, 120, 0.2, "5 replicas running")
        assert all(a["node"] != node for a in allocs), allocs
    finally:
        c.stop()


def test_worker_only_node_runs_exec_tasks(tmp_path: Path) -> None:
    """`heroctld agent --servers ...`: a node that is not a raft member, with
    a token, running a task with the exec driver (a plain process)."""
    c = Cluster(tmp_path, 1).start()  # a server without an agent of its own
    first, last = port_range(100)
    env = {
        "HEROCTL_AGENT_PORT_RANGE": f"{first}-{last}",
        "HEROCTL_AGENT_CPU": "1000",
        "HEROCTL_AGENT_MEMORY": "512",
        "HEROCTL_AGENT_DRIVERS": "exec",
    }
    worker = Worker(c, "worker-1", tmp_path, env=env).start()
    try:
        (node,) = wait_nodes(c, 1)
        assert node["name"] == "worker-1" and node["drivers"] == ["exec"]
        job = {
            "name": "plain",
            "driver": "exec",
            "command": [
                "sh",
                "-c",
                # -h .: its directory is reached as the working directory (README)
                "echo plain > index.html; exec busybox httpd -f -h . -p $HEROCTL_ADDR_HTTP",
            ],
            "ports": [{"name": "http"}],
            "resources": {"cpu": 100, "memory": 32},
            "check": {"type": "http", "port": "http", "interval": "1s", "timeout": "1s"},
            "update": {"min_healthy_time": "1s", "healthy_deadline": "30s"},
            "count": 1,
        }
        submit(c, job)
        (a,) = wait_healthy(c, "plain", 1, timeout=30)
        port = alloc_detail(c, a["id"])["ports"]["http"]
        assert first <= port <= last
        assert fetch(port).strip() == "plain"
        assert api(c).delete("/v1/jobs/plain").status == 200

        def gone() -> bool:
            try:
                fetch(port)
            except OSError:
                return True
            return False

        wait_until(gone, 20, 0.2, "the exec task stopped")
    finally:
        worker.stop()
        worker.remove_tasks()
        c.stop()
