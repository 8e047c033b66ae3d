"""The disaster test (issue 14 part 3): back up a 3-server cluster, destroy
every server and its data dir, start a brand-new 3-server cluster with the
same cluster key, restore, and everything comes back: jobs and their
versions, secrets (readable), ACL (a token and a user still work; the new
cluster's own bootstrap token no longer does), webhooks, ingress entries.

With a Docker engine, a job's container runs on a worker-only node through
it: the worker's agent dies with the servers (its containers belong to the
engine and keep running), and the agent started again on the worker's data
dir (its node id) registers with the new cluster and adopts the container:
the same container, never restarted. A job submitted after the backup is not
in the restored state: that the new agent removes its container shows it
reconciled with the restored state. Without Docker that part is skipped,
with the reason.

The module builds the disaster once (a fixture) and its two tests read it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.api.authutil import anon, as_, login, make_token, put_policy
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.ports import port_range
from tests.support.worker import Worker
from tests.support.workloads import IMAGE, docker_unavailable

_NO_DOCKER = docker_unavailable()
SECRET_VALUE = "the-database-password"
PASSWORD = "correct horse battery"
WORKER_ENV = {  # and HEROCTL_AGENT_PORT_RANGE, the same for both clusters (the fixture's)
    "HEROCTL_AGENT_CPU": "1000",
    "HEROCTL_AGENT_MEMORY": "512",
    "HEROCTL_AGENT_DRIVERS": "docker",
}
# The servers run their own agents (exec only: the docker job runs on the worker).
SERVER_ENV = {"HEROCTL_AGENT_DRIVERS": "exec"}
NODE_TTL = "8"  # the new cluster marks the destroyed servers' nodes down after it


def exec_job(version: str) -> dict[str, Any]:
    """A job that is never placed (more memory than any node has): versions only."""
    task = {
        "name": "t",
        "driver": "exec",
        "command": "/bin/sleep",
        "args": ["600"],
        "resources": {"cpu": 100, "memory": 100_000},
    }
    group = {"name": "g", "count": 1, "meta": {"v": version}, "tasks": [task]}
    return {"name": "versions", "type": "service", "groups": [group]}


def sleeper_job() -> dict[str, Any]:
    task = {
        "name": "main",
        "driver": "docker",
        "image": IMAGE,
        "command": ["sleep", "600"],
        "resources": {"cpu": 50, "memory": 16},
        "kill_timeout": "1s",
    }
    return {"name": "after-backup", "type": "service", "groups": [{"name": "g", "tasks": [task]}]}


def keeper_job() -> dict[str, Any]:
    task = {
        "name": "web",
        "driver": "docker",
        "image": IMAGE,
        "command": ["httpd", "-f", "-p", "8080", "-h", "/var/www"],
        "resources": {"cpu": 100, "memory": 32},
        "ports": [{"name": "http", "to": 8080}],
        "kill_timeout": "1s",
    }
    return {
        "name": "keeper",
        "type": "service",
        "groups": [{"name": "app", "count": 1, "tasks": [task]}],
    }


@dataclass
class Disaster:
    old: Cluster
    new: Cluster
    restored: dict[str, Any]
    reader_token: str
    webhook_id: str
    new_bootstrap_token: str
    before_restore: dict[str, int] = field(default_factory=dict)  # statuses on the new cluster
    container: dict[str, Any] | None = None  # the keeper's container before the disaster
    worker: Worker | None = None
    after_backup: str | None = None  # the allocation of a job submitted after the backup
    old_nodes: set[str] = field(default_factory=set)  # every node of the old cluster

    @property
    def server(self) -> Server:
        return self.new.servers[0]


def ready_nodes(server: Server) -> dict[str, str]:
    """{node id: name} of the ready nodes."""
    return {n["id"]: n["name"] for n in server.get("/v1/nodes").body if n["status"] == "ready"}


def _running_alloc(server: Server, job: str) -> dict[str, Any] | None:
    allocs = server.get(f"/v1/allocations?job={job}").body
    running = [a for a in allocs if a["status"] == "running"]
    return running[0] if running else None


def _containers_of(alloc_id: str) -> list[dict[str, Any]]:
    import docker  # noqa: PLC0415 - only with an engine

    client = docker.from_env(timeout=30)
    try:
        found = client.containers.list(filters={"label": f"heroctl.alloc_id={alloc_id}"})
        return [
            {"id": c.id, "started": c.attrs["State"]["StartedAt"], "running": c.status}
            for c in found
        ]
    finally:
        client.close()


def _container_of(alloc_id: str) -> dict[str, Any]:
    (container,) = _containers_of(alloc_id)
    return container


def _populate(old: Cluster) -> tuple[str, str]:
    """Jobs with versions, a secret, ACL, a webhook, an ingress entry; (token, webhook id)."""
    a, b, c = old.servers
    assert a.post("/v1/jobs", exec_job("1")).status in (200, 201)
    assert a.post("/v1/jobs", exec_job("2")).status in (200, 201)
    assert b.post("/v1/jobs", keeper_job()).status in (200, 201)
    assert b.post("/v1/secrets", {"name": "db", "value": SECRET_VALUE}).status in (200, 201)
    put_policy(c, "readers", {"jobs": "read"})
    reader = make_token(c, ["readers"])["secret_id"]
    user = {"username": "ops", "password": PASSWORD, "policies": ["readers"]}
    assert c.post("/v1/acl/users", user).status == 201
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["job"], "secret": "hook-secret"}
    webhook = a.post("/v1/webhooks", hook).body["id"]
    route = {"path": "/", "job": "keeper", "group": "app", "port": "http"}
    entry = {"host": "keeper.example.com", "routes": [route], "tls": "off"}
    assert a.post("/v1/ingress", entry).status == 201
    return reader, webhook


@pytest.fixture(scope="module")
def disaster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Disaster]:
    root = tmp_path_factory.mktemp("disaster")
    for part in ("old", "new"):
        (root / part).mkdir()
    old = Cluster(root / "old", 3, agent=True, env=SERVER_ENV).start()
    worker_env = {**WORKER_ENV, "HEROCTL_AGENT_PORT_RANGE": "{}-{}".format(*port_range(100))}
    worker: Worker | None = None
    new: Cluster | None = None
    try:
        if _NO_DOCKER is None:
            worker = Worker(old, "worker-1", root, env=worker_env).start()
            wait_until(
                lambda: len(ready_nodes(old.servers[0])) == 4,
                60,
                0.2,
                "the worker and the servers' nodes ready",
            )
        reader, webhook = _populate(old)
        container = None
        if worker is not None:
            alloc = wait_until(lambda: _running_alloc(old.servers[0], "keeper"), 60, 0.2, "keeper")
            container = {"alloc": alloc["id"], **_container_of(alloc["id"])}
        old_ca = old.servers[0].ca_file.read_text()
        backup = old.leader().get("/v1/operator/snapshot", timeout=60)
        assert backup.status == 200, backup.raw[:300]
        after_backup = None
        if worker is not None:
            assert old.servers[0].post("/v1/jobs", sleeper_job()).status in (200, 201)
            late = wait_until(
                lambda: _running_alloc(old.servers[0], "after-backup"), 60, 0.2, "after-backup"
            )
            after_backup = late["id"]
            assert _containers_of(after_backup)

        old_nodes = {n["id"] for n in old.servers[0].get("/v1/nodes").body}
        # The disaster: every server and its data dir, and the worker's agent process.
        for s in old.servers:
            s.kill()
        if worker is not None:
            worker.kill()  # its container belongs to the engine: it keeps running
        for s in old.servers:
            shutil.rmtree(s.data_dir)

        new = Cluster(
            root / "new",
            3,
            cluster_key=old.cluster_key,
            agent=True,
            env={**SERVER_ENV, "HEROCTL_NODE_TTL": NODE_TTL},
        ).start()
        s = new.servers[0]
        statuses = {
            "reader": as_(s, reader, "GET", "/v1/jobs").status,
            "user": anon(
                s, "POST", "/v1/auth/login", {"username": "ops", "password": PASSWORD}
            ).status,
        }
        headers = {"Content-Type": "application/octet-stream"}
        r = new.servers[1].put(
            "/v1/operator/snapshot", raw=backup.raw, headers=headers, timeout=120
        )
        assert r.status == 200, r.raw
        # The restored ACL is the old cluster's: its management token, not the new one's.
        new_token = str(new.token)
        for server in new.servers:
            server.token = old.token
        new.token = old.token
        # Every server serves a certificate of the restored CA before the worker trusts it.
        for server in new.servers:
            wait_until(lambda server=server: server.ca_file.read_text() == old_ca, 30, 0.1, "CA")
        if worker is not None:
            worker = Worker(new, "worker-1", root, env=worker_env).start()
        yield Disaster(
            old,
            new,
            r.body,
            reader,
            webhook,
            new_token,
            statuses,
            container,
            worker,
            after_backup,
            old_nodes,
        )
    finally:
        if worker is not None:
            worker.stop()
            worker.remove_tasks()
        if new is not None:
            new.stop()
        old.stop()


def test_everything_comes_back_on_the_new_cluster(disaster: Disaster) -> None:
    assert disaster.before_restore == {"reader": 401, "user": 401}  # not the new cluster's
    for s in disaster.new.servers:
        jobs = {j["name"] for j in wait_until(lambda s=s: s.get("/v1/jobs").body, 15)}
        assert jobs == {"versions", "keeper"}, s.name
        versions = s.get("/v1/jobs/versions/versions").body
        assert [v["version"] for v in versions] == [1, 0]
        assert [v["groups"][0]["meta"]["v"] for v in versions] == ["2", "1"]
        assert s.get("/v1/secrets/db").body["value"] == SECRET_VALUE
        assert [w["id"] for w in s.get("/v1/webhooks").body] == [disaster.webhook_id]
        assert [e["host"] for e in s.get("/v1/ingress").body] == ["keeper.example.com"]
        assert as_(s, disaster.reader_token, "GET", "/v1/jobs").status == 200
        assert as_(s, disaster.reader_token, "GET", "/v1/secrets/db").status == 403
        assert as_(s, disaster.new_bootstrap_token, "GET", "/v1/jobs").status == 401
    jwt = login(disaster.server, username="ops", password=PASSWORD)["token"]
    assert as_(disaster.new.servers[2], jwt, "GET", "/v1/jobs").status == 200
    # the restored cluster takes writes
    s = disaster.server
    assert s.post("/v1/jobs", exec_job("3")).status in (200, 201)
    assert [v["version"] for v in s.get("/v1/jobs/versions/versions").body] == [2, 1, 0]


def test_the_nodes_of_both_clusters_are_sorted_out(disaster: Disaster) -> None:
    """The new servers' agents register with their own node ids again (the
    restore replaced the nodes table with the old cluster's: their heartbeats
    are answered 404 and they register); the destroyed servers' nodes, which
    no agent answers for any more, go down after the node TTL."""
    s = disaster.server
    new_servers = {srv.name for srv in disaster.new.servers}
    new_ids = {srv.node_id for srv in disaster.new.servers}
    assert not new_ids & disaster.old_nodes  # the new servers' agents have ids of their own
    old_servers = {n["id"] for n in s.get("/v1/nodes").body if n["id"] in disaster.old_nodes} - (
        {disaster.worker.node_id} if disaster.worker else set()
    )

    def sorted_out() -> bool:
        nodes = {n["id"]: n for n in s.get("/v1/nodes").body}
        mine = {i for i, n in nodes.items() if n["status"] == "ready" and n["name"] in new_servers}
        gone = all(nodes[i]["status"] == "down" for i in old_servers)
        return mine == new_ids and gone

    wait_until(sorted_out, 60, 0.25, "the new agents registered and the old nodes down")
    assert len(old_servers) == 3


@pytest.mark.docker
@pytest.mark.skipif(_NO_DOCKER is not None, reason=_NO_DOCKER or "")
def test_the_new_agent_adopts_the_container_that_kept_running(disaster: Disaster) -> None:
    assert disaster.container is not None and disaster.worker is not None
    assert disaster.after_backup is not None
    s = disaster.server
    alloc_id = disaster.container["alloc"]
    # The new agent process registered with the new cluster under the worker's node id...
    node_id = disaster.worker.node_id

    def registered() -> dict[str, Any] | None:
        node = s.get(f"/v1/nodes/{node_id}").body
        return node if node.get("agent_api") == disaster.worker.api_url else None

    node = wait_until(registered, 60, 0.2, "the new agent registered")
    assert node["name"] == "worker-1" and node["status"] == "ready"
    assert node["modify_index"] > disaster.restored["index"]
    # ...reconciled with the restored state: what was submitted after the backup goes...
    wait_until(lambda: not _containers_of(disaster.after_backup or ""), 60, 0.2, "removed")
    # ...and the container of the restored allocation is the one that kept running.
    now = _container_of(alloc_id)
    assert (now["id"], now["started"]) == (disaster.container["id"], disaster.container["started"])
    assert now["running"] == "running"
    allocs = s.get("/v1/allocations?job=keeper").body
    assert [(a["id"], a["status"]) for a in allocs] == [(alloc_id, "running")]  # not replaced
    assert s.get("/v1/allocations?job=after-backup").body == []
