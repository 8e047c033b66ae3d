"""The attacker suite: the holes of the hardening issue, tried against a real
3-server cluster whose servers run their agents on a real Docker engine.
Each attempt is refused with the right status and the contract's error
body, and the state it aimed at is the same afterwards.

Holes tested elsewhere with the setup they need: the exec driver as real
processes and host mounts (test_hardening.py), oversized raft frames
(test_raft_port.py), concurrent login guesses and refresh races
(tests/api/test_login_hardening.py), disk errors (test_durability.py), TLS
(test_tls.py), the engine going away (test_late_engine.py), diverged log
entries (tests/raft/).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from domain.crypto import JOIN_AUDIENCE, KeyMaterial
from raft.keys import generate_cluster_key
from tests.api.authutil import as_, assert_error, bearer, make_token, put_policy
from tests.integration.test_raft_port import send_frame
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.http import Reply, request
from tests.support.nodes import HandNode, hand_node
from tests.support.workloads import IMAGE, docker_unavailable, printer_job

_NO_DOCKER = docker_unavailable()
pytestmark = pytest.mark.skipif(_NO_DOCKER is not None, reason=_NO_DOCKER or "")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("attacker"), 3, agent=True)
    c.env["HEROCTL_WEBHOOKS_ALLOW_PRIVATE"] = "false"  # the default outside the tests
    c.start()
    try:
        wait_until(
            lambda: (
                len([n for n in c.servers[0].get("/v1/nodes").body if n["status"] == "ready"]) == 3
            ),
            60,
            0.2,
            "three nodes ready",
        )
        r = c.servers[0].post("/v1/secrets", {"name": "root_db", "value": "hunter2"})
        assert r.status == 201, r.body
        r = c.servers[0].post("/v1/jobs", printer_job("victim", 3))
        assert r.status == 201, r.body

        # Running, and healthy too: each node reports healthy in a later report
        # (min_healthy_time, 10 s by default), which would change the
        # allocations under a test's `unchanged` snapshot.
        def settled() -> bool:
            allocs = c.servers[0].get("/v1/allocations?job=victim").body
            good = [a for a in allocs if a["status"] == "running" and a["healthy"] is True]
            return len(good) == 3

        try:
            wait_until(settled, 90, 0.3, "the victim job running and healthy on every node")
        except TimeoutError as e:
            allocs = c.servers[0].get("/v1/allocations?job=victim").body
            seen = [(a["id"][:8], a["status"], a["healthy"]) for a in allocs]
            raise TimeoutError(f"{e}: {seen}") from None
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def server(cluster: Cluster) -> Server:
    return cluster.servers[0]


def narrow_token(server: Server, name: str, rules: dict[str, Any]) -> str:
    put_policy(server, name, rules)
    return make_token(server, [name])["secret_id"]


def snapshot(server: Server) -> dict[str, Any]:
    """What the attacks aim at, as every server sees it after catching up."""

    def get(path: str) -> Any:
        r = server.get(path + ("&" if "?" in path else "?") + "consistent=true")
        assert r.status == 200, r.body
        return r.body

    return {
        "peers": sorted((p["name"], p.get("api_address")) for p in get("/v1/cluster/peers")),
        "nodes": sorted(  # the servers' nodes (a test may add a node of its own)
            (n["id"], n["name"], n["modify_index"])
            for n in get("/v1/nodes")
            if not n["name"].startswith("hand-")
        ),
        "allocations": sorted(
            (a["id"], a["node"], a["status"], a["healthy"], a["modify_index"])
            for a in get("/v1/allocations?job=victim")
        ),
        "jobs": sorted(j["name"] for j in get("/v1/jobs")),
    }


@pytest.fixture
def unchanged(server: Server) -> Iterator[None]:
    before = snapshot(server)
    yield
    assert snapshot(server) == before


def test_jobs_write_cannot_run_exec_or_privileged_or_read_secrets(
    server: Server, unchanged: None
) -> None:
    """Holes 1 and 2: `jobs: write` was root on every node and read any secret."""
    token = narrow_token(server, "deployer", {"jobs": "write"})
    exec_job = {
        "name": "cat-env",
        "driver": "exec",
        "command": "/bin/cat",
        "args": ["/proc/1/environ"],
    }
    r = as_(server, token, "POST", "/v1/jobs", exec_job)
    assert_error(r, 403, "forbidden")
    assert "exec" in r.body["message"]
    privileged = {"name": "priv", "image": IMAGE, "privileged": True}
    assert_error(as_(server, token, "POST", "/v1/jobs", privileged), 403, "forbidden")
    stealer = {"name": "steal", "image": IMAGE, "secrets": {"DB": "root_db"}}
    r = as_(server, token, "POST", "/v1/jobs", stealer)
    assert_error(r, 403, "forbidden")
    assert "root_db" in r.body["message"]


def test_no_token_can_repoint_a_server(cluster: Cluster, server: Server, unchanged: None) -> None:
    """Hole 3: `cluster: write` overwrote a server's row with the attacker's API."""
    victim = cluster.servers[1]
    hijack = {
        "name": victim.name,
        "raft_address": victim.raft_address,
        "api_address": "https://127.0.0.1:9",
    }
    cluster_writer = narrow_token(server, "cluster-admin", {"cluster": "write"})
    assert_error(as_(server, cluster_writer, "POST", "/v1/cluster/peers", hijack), 403, "forbidden")
    # Management is not enough: a server's row comes from that server only.
    r = server.post("/v1/cluster/peers", hijack)
    assert_error(r, 403, "join_proof_required")
    # A credential of the cluster's made for another server, or one for
    # joining that names someone else, is refused too.
    keys = KeyMaterial(cluster.cluster_key)
    for_other = keys.server_token(victim.name, audience=cluster.servers[2].name)
    assert_error(as_(server, for_other, "POST", "/v1/cluster/peers", hijack), 401, "invalid_token")
    joining_as_other = keys.server_token("intruder", JOIN_AUDIENCE)
    r = as_(server, joining_as_other, "POST", "/v1/cluster/peers", hijack)
    assert_error(r, 403, "join_proof_required")
    # ... and a joining credential can do nothing else.
    assert_error(as_(server, joining_as_other, "GET", "/v1/jobs"), 403, "forbidden")
    foreign = KeyMaterial(generate_cluster_key()).server_token(victim.name, JOIN_AUDIENCE)
    assert_error(as_(server, foreign, "POST", "/v1/cluster/peers", hijack), 401, "invalid_token")


def _victim_alloc(server: Server) -> dict[str, Any]:
    return server.get("/v1/allocations?job=victim").body[0]


def test_node_reports_are_bound_to_the_node(
    cluster: Cluster, server: Server, unchanged: None
) -> None:
    """Hole 4: any `allocations: write` token marked any allocation failed,
    and a registration could take over another node's id."""
    alloc = _victim_alloc(server)
    poison = {"node": alloc["node"], "updates": [{"id": alloc["id"], "status": "failed"}]}
    writer = narrow_token(server, "alloc-writer", {"allocations": "write", "nodes": "write"})
    assert_error(
        as_(server, writer, "POST", "/v1/allocations/status", poison), 403, "not_this_node"
    )
    assert_error(server.post("/v1/allocations/status", poison), 403, "not_this_node")  # management
    heartbeat = f"/v1/nodes/{alloc['node']}/heartbeat"
    assert_error(as_(server, writer, "POST", heartbeat, {}), 403, "not_this_node")
    # Another server's own credential is not this node's either.
    owner = next(s for s in cluster.servers if s.node_id == alloc["node"])
    other = next(s for s in cluster.servers if s is not owner)
    keys = KeyMaterial(cluster.cluster_key)
    as_other = bearer(keys.server_token(other.name, audience=server.name))
    r = request("POST", server.url + "/v1/allocations/status", poison, headers=as_other)
    assert_error(r, 403, "not_this_node")
    # Re-registering a server's node, with its id and an agent API of ours: refused.
    takeover = HandNode(server, id=alloc["node"], name="evil")
    r = takeover.register(agent_api="http://127.0.0.1:9")
    assert_error(r, 403, "node_owned")
    assert "belongs to server" in r.body["message"]
    # A worker-only node: its id needs its secret; its credential speaks for it only.
    worker = hand_node(server)
    assert_error(HandNode(server, id=worker.id, name="evil").register(), 403, "node_owned")
    r = worker.report(poison["updates"])  # about its own node: another's allocation is refused
    assert r.status == 200 and r.body["applied"] == 0 and r.body["refused"] == [alloc["id"]]
    r = worker.post("/v1/allocations/status", poison)
    assert_error(r, 403, "not_this_node")
    assert_error(worker.post(heartbeat, {}), 403, "not_this_node")
    assert_error(worker.get(f"/v1/nodes/{alloc['node']}/allocations"), 403, "not_this_node")
    assert_error(worker.get("/v1/jobs"), 403, "forbidden")  # a node credential: agent routes only
    r = worker.get(f"/v1/allocations/{alloc['id']}/secrets?task=main")
    assert_error(r, 403, "not_this_node")
    assert worker.heartbeat().status == 200  # and for itself, it works
    r = worker.register()  # again, with its own credential instead of a token
    assert r.status == 200, r.body
    assert "agent_secret" not in r.body and "owner" not in r.body


def test_the_raft_port_drops_junk_before_buffering(server: Server) -> None:
    """Hole 5: a frame of 64 MiB from a peer that never authenticated."""
    took, grown = send_frame(server, 64 * 2**20, 64 * 2**20)
    assert took < 5 and grown < 4096, (took, grown)
    assert server.get("/v1/cluster/status").status == 200


def test_webhooks_cannot_reach_inside(server: Server, unchanged: None) -> None:
    """Hole 7: a webhook to loopback or a private address (allow_private is off)."""
    for url in ("http://127.0.0.1:7070/v1/jobs", "http://10.1.2.3/x", "http://[::1]:80/"):
        r = server.post("/v1/webhooks", {"url": url, "events": ["job.deployed"]})
        assert_error(r, 400)


def test_nothing_secret_in_answers(server: Server) -> None:
    """No API answer carries a node secret or an owner's fingerprint."""
    for node in server.get("/v1/nodes").body:
        detail: Reply = server.get(f"/v1/nodes/{node['id']}")
        assert "agent_secret" not in detail.body and "owner" not in detail.body
