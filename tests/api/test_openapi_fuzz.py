"""The OpenAPI document against a real 3-server cluster: it is served (no
token) as built, and every operation it describes, fuzzed from its schemas
(tests/support/openapi_fuzz.py), never answers a 5xx, always wraps an error
in the envelope, gives only documented statuses and answers what its schema
says. Bounded: a few examples per operation and a budget for the whole run.

Left out: what would break the cluster under the other operations (removing
a server, moving the leadership, rotating the keyring, restoring a backup)
and the ACL bootstrap
(done once, by the harness).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from api.openapi.document import document
from tests.support import tls
from tests.support.cluster import Cluster, wait_until
from tests.support.http import request
from tests.support.openapi_fuzz import Fuzzer, Seeds, Wire

EXAMPLES = 40  # per operation
BUDGET = 100.0  # seconds of fuzzing in all; past it, examples do nothing
SKIPPED = {
    ("DELETE", "/v1/cluster/peers/{name}"): "removes a server from the cluster",
    ("POST", "/v1/raft/transfer-leadership"): "moves the leadership under the other requests",
    ("POST", "/v1/operator/keyring/rotate"): "re-encrypts every secret",
    ("POST", "/v1/acl/bootstrap"): "the harness bootstraps the cluster",
    ("PUT", "/v1/operator/snapshot"): "replaces the whole state",
}
USER_PASSWORD = "fuzz-password-1"
DOC = document()
# Deletions last: the seeded objects stay for the other operations to find.
OPERATIONS = sorted(
    ((m.upper(), p) for p, item in DOC["paths"].items() for m in item),
    key=lambda op: op[0] == "DELETE",
)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    database=None,
    suppress_health_check=list(HealthCheck),
)


@dataclass
class Run:
    fuzzer: Fuzzer
    wires: list[Wire]
    ends: float  # monotonic time the budget runs out


def _seed(c: Cluster) -> Seeds:
    """Things for the fuzzed requests to find: a node (nobody runs it), a job
    placed on it, a secret, ACL objects, a webhook and an ingress domain."""
    s = c.servers[0]
    node = {
        "id": "fuzz-node-1",
        "name": "fuzz-node",
        "resources": {"cpu": 4000, "memory": 4096, "disk": 10000},
        "drivers": ["docker", "exec"],
        "agent_secret": secrets.token_urlsafe(32),
    }
    assert s.post("/v1/nodes/register", node).status == 200
    job = {"name": "fuzz-web", "image": "nginx:1.27", "ports": [{"name": "http", "to": 80}]}
    assert s.post("/v1/jobs", job).status == 201
    allocs = wait_until(lambda: s.get("/v1/allocations?job=fuzz-web").body, message="placed")
    assert s.post("/v1/secrets", {"name": "fuzz_db", "value": "hunter2"}).status == 201
    assert (
        s.post("/v1/acl/policies", {"name": "fuzz-read", "rules": {"jobs": "read"}}).status == 201
    )
    assert s.post("/v1/acl/roles", {"name": "fuzz-role", "policies": ["fuzz-read"]}).status == 201
    token = s.post("/v1/acl/tokens", {"name": "fuzz", "policies": ["fuzz-read"]}).body
    assert (
        s.post("/v1/acl/users", {"username": "fuzz-user", "password": USER_PASSWORD}).status == 201
    )
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["job"], "secret": "fuzz-secret"}
    webhook = s.post("/v1/webhooks", hook).body
    route = {"path": "/", "job": "fuzz-web", "group": "fuzz-web", "port": "http"}
    host = {"host": "fuzz.example.com", "routes": [route], "tls": "off"}
    assert s.post("/v1/ingress", host).status == 201
    deployments = [d["id"] for d in s.get("/v1/deployments").body]
    alloc_ids = [a["id"] for a in allocs]
    paths = {
        "jobs": ["fuzz-web"],
        "deployments": deployments,
        "allocations": alloc_ids,
        "logs": alloc_ids,
        "nodes": ["fuzz-node-1", "fuzz-node", "server-1"],
        "secrets": ["fuzz_db"],
        "policies": ["fuzz-read"],
        "roles": ["fuzz-role"],
        "tokens": [token["accessor_id"], "self"],
        "users": ["fuzz-user"],
        "webhooks": [webhook["id"]],
        "deliveries": ["d_0"],
        "ingress": ["fuzz.example.com"],
    }
    values = {
        "job": ["fuzz-web"],
        "alloc": alloc_ids,
        "node": ["fuzz-node-1", "fuzz-node"],
        "host": ["fuzz.example.com"],
        "task": ["fuzz-web"],
        "group": ["fuzz-web"],
        "port": ["http"],
        "policies": [["fuzz-read"]],
        "roles": [["fuzz-role"]],
        "events": [["job"], ["*"], ["job.submitted", "node"]],
        "secret": [secrets.token_hex(8)],
        "username": ["fuzz-user"],
        "password": [USER_PASSWORD],
        "acl_token": [c.token],
        "version": [1],
        "count": [1, 2],
        "path": ["/", "/api"],
        "tls": ["off"],
        "agent_secret": [secrets.token_urlsafe(32)],
    }
    return Seeds(paths, values)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    c = Cluster(tmp_path_factory.mktemp("openapi"), 3).start()
    try:
        assert c.token is not None
        seeds = _seed(c)
        wires = [Wire(s.url, tls.context) for s in c.servers]
        yield Run(Fuzzer(DOC, c.token, seeds), wires, time.monotonic() + BUDGET)
    finally:
        c.stop()


def test_the_document_is_served_without_a_token(run: Run) -> None:
    for wire in run.wires:
        r = request("GET", wire.url + "/v1/openapi.json")
        assert r.status == 200
        assert r.header("Content-Type") or "".startswith("application/json")
        assert r.body == DOC


def test_a_forwarded_error_names_one_request_id(run: Run) -> None:
    """A follower relays a heartbeat to the leader: the leader's error body and
    the X-Request-Id the client sees name the same request."""
    for wire in run.wires:
        r = request(
            "POST",
            wire.url + "/v1/nodes/no-such-node/heartbeat",
            {},
            headers={"Authorization": f"Bearer {run.fuzzer.token}"},
        )
        assert r.status == 404 and r.body["error"] == "node_not_found"
        assert r.body["request_id"] == r.header("X-Request-Id")


def test_logs_no_node_can_give_name_the_allocation_asked_for(run: Run) -> None:
    """`?alloc=` on the seeded allocation, whose node nobody runs: a 503 that
    names the allocation (there is no job in that question)."""
    alloc = run.fuzzer.seeds.values["alloc"][0]
    r = request(
        "GET",
        run.wires[0].url + f"/v1/logs?alloc={alloc}",
        headers={"Authorization": f"Bearer {run.fuzzer.token}"},
    )
    assert r.status == 503 and r.body["error"] == "node_unreachable"
    assert alloc in r.body["message"] and "None" not in r.body["message"]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzzed_requests_get_documented_answers(run: Run, method: str, path: str) -> None:
    if (method, path) in SKIPPED:
        pytest.skip(SKIPPED[(method, path)])

    @FUZZ
    @given(run.fuzzer.calls(method, path), st.sampled_from(run.wires))
    def fuzz(call, wire) -> None:  # type: ignore[no-untyped-def]
        if time.monotonic() > run.ends:
            return
        reply = wire.send(call)
        problems = run.fuzzer.check(method, path, call, reply)
        assert not problems, f"{call}\n-> {reply.status} from {wire.url}: " + "; ".join(problems)

    fuzz()
