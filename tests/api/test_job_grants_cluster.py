"""`jobs: write` is not root on every node, against a real server: a job may
use only the secrets, drivers, privilege and host paths its submitter was
granted (403 naming what, nothing stored), and an allocation's secrets go
only to its node, one task's at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from domain.crypto import KeyMaterial
from tests.api.authutil import as_, assert_error, make_token, put_policy
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.http import request
from tests.support.nodes import hand_node

SECRETS = {"app_db": "app-db-value", "app_mail": "app-mail-value", "ops_root": "ops-root-value"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("job-grants"), 1).start()
    try:
        s = c.servers[0]
        for name, value in SECRETS.items():
            assert s.post("/v1/secrets", {"name": name, "value": value}).status == 201
        put_policy(s, "deploy", {"jobs": "write", "secrets": {"app_*": "read", "*": "list"}})
        put_policy(
            s,
            "deploy-host",
            {"jobs": {"drivers": ["docker", "exec"], "privileged": True, "host_volumes": ["/srv"]}},
        )
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def server(cluster: Cluster) -> Server:
    return cluster.servers[0]


@pytest.fixture(scope="module")
def deployer(server: Server) -> str:
    """A `jobs: write` token that may read the app_* secrets, nothing more."""
    return make_token(server, ["deploy"])["secret_id"]


def job(name: str, **task: Any) -> dict[str, Any]:
    base = {"name": "web", "image": "busybox", "command": ["sleep", "60"]}
    if task.get("driver") == "exec":
        base = {"name": "web", "command": ["sleep", "60"]}
    return {"name": name, "groups": [{"name": "g", "tasks": [{**base, **task}]}]}


def refused(server: Server, token: str, spec: dict[str, Any], *names: str) -> str:
    """The submission gets 403 forbidden naming each of ``names``, and stores nothing."""
    r = as_(server, token, "POST", "/v1/jobs", spec)
    assert_error(r, 403, "forbidden")
    message = r.body["message"]
    assert message.startswith("this token may not submit this job: "), message
    for name in names:
        assert name in message, (name, message)
    assert all(value not in r.raw.decode() for value in SECRETS.values())
    assert_error(server.get(f"/v1/jobs/{spec['name']}"), 404, "job_not_found")
    return message


def test_a_job_may_reference_only_secrets_its_submitter_may_read(
    server: Server, deployer: str
) -> None:
    message = refused(
        server,
        deployer,
        job("steal", secrets={"DB": "app_db", "ROOT": "ops_root@1"}),
        "secret 'ops_root' is not readable (groups[0].tasks[0].secrets.ROOT)",
    )
    assert "app_db" not in message  # only what was refused
    r = as_(server, deployer, "POST", "/v1/jobs", job("fair", secrets={"DB": "app_db"}))
    assert r.status == 201, r.body


def test_privilege_host_paths_and_exec_need_a_granting_policy(
    server: Server, deployer: str
) -> None:
    refused(
        server,
        deployer,
        job("root1", privileged=True),
        "privileged is not granted (groups[0].tasks[0].privileged)",
    )
    refused(
        server,
        deployer,
        job("root2", volumes=[{"source": "/etc", "target": "/host-etc"}]),
        "host path '/etc' is not granted (groups[0].tasks[0].volumes[0].source)",
    )
    refused(
        server,
        deployer,
        job("root3", driver="exec", command=["cat", "/etc/heroctl/heroctl.env"]),
        "the exec driver is not granted (groups[0].tasks[0].driver)",
    )
    granted = make_token(server, ["deploy", "deploy-host"])["secret_id"]
    refused(
        server,
        granted,
        job("root4", volumes=[{"source": "/srvx", "target": "/x"}]),
        "host path '/srvx' is not granted",
    )
    for name, spec in (
        ("ok1", job("ok1", privileged=True, volumes=[{"source": "/srv/data", "target": "/d"}])),
        ("ok2", job("ok2", driver="exec", user="root")),
    ):
        r = as_(server, granted, "POST", "/v1/jobs", spec)
        assert r.status == 201, (name, r.body)


def test_a_bad_policy_is_a_400_naming_the_field(server: Server) -> None:
    r = server.post("/v1/acl/policies/bad", {"rules": {"jobs": {"drivers": ["qemu"]}}})
    assert_error(r, 400, "invalid_field")
    assert "rules.jobs.drivers" in r.body["message"]
    assert_error(server.get("/v1/acl/policies/bad"), 404)


def test_an_agent_gets_only_its_own_tasks_secrets(cluster: Cluster, server: Server) -> None:
    node = hand_node(
        server,
        address="127.0.0.1",
        port_range=[21000, 21999],
        drivers=["docker"],
        resources={"cpu": 4000, "memory": 4096, "disk": 10_000},
    )
    spec = {
        "name": "two-tasks",
        "constraints": [{"attribute": "node.name", "value": node.name}],
        "groups": [
            {
                "name": "g",
                "tasks": [
                    {"name": "web", "image": "busybox", "secrets": {"DB": "app_db"}},
                    {"name": "mail", "image": "busybox", "secrets": {"MAIL": "app_mail"}},
                ],
            }
        ],
    }
    assert server.post("/v1/jobs", spec).status == 201
    alloc = wait_until(
        lambda: (server.get("/v1/allocations?job=two-tasks").body or [None])[0],
        15,
        message="the allocation placed",
    )
    path = f"/v1/allocations/{alloc['id']}/secrets"
    r = node.get(path + "?task=web")  # the node running it, with its node credential
    assert r.status == 200 and r.body == {"env": {"DB": "app-db-value"}}, r.body
    assert node.get(path + "?task=mail").body == {"env": {"MAIL": "app-mail-value"}}
    assert_error(node.get(path), 400, "missing_parameter")
    assert_error(node.get(path + "?task=nope"), 400, "invalid_parameter")
    # Another node, a server (its node is not this one), a token allowed
    # everything a worker could want: none of them is the node running it.
    assert_error(hand_node(server).get(path + "?task=web"), 403, "not_this_node")
    keys = KeyMaterial(cluster.cluster_key)
    headers = {"Authorization": f"Bearer {keys.server_token(server.name, server.name)}"}
    r = request("GET", server.url + path + "?task=web", headers=headers)
    assert_error(r, 403, "not_this_node")
    rules = {"nodes": "write", "allocations": "write", "secrets": {"*": "read"}}
    put_policy(server, "worker", rules)
    worker = make_token(server, ["worker"])["secret_id"]
    assert_error(as_(server, worker, "GET", path + "?task=web"), 403, "not_this_node")
