"""The table of operations (raft.operations): it names every op the code
proposes, and every operation records every row it changes in the tables
events are derived from, so no operation can lack its events."""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raft import fsm
from raft.backup import take_backup
from raft.changes import Changes
from raft.deployment_docs import deployment_id
from raft.event_derivation import ANNOUNCED
from raft.fsm import apply_batch
from raft.operations import OPERATIONS, Operation
from raft.state import State
from tests.raft.event_log import WEB, cmd

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "agent", "cli", "client", "domain", "heroctld", "httpkit", "raft")
PROPOSED = re.compile(r'(?:\.write|new_command)\(\s*"([a-z_]+(?:\.[a-z_]+)*)"')

SEALED = {"nonce": b"n" * 12, "ciphertext": b"c" * 16}
SECRET = {"key_id": "k1", **SEALED}
WID = "wh_00000000000000aa"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----\n"
SESSION = {"id": "s1", "subject": "user:admin", "jti": "j1", "refresh_hash": "r1"}
BOOT = cmd(
    "acl.bootstrap",
    token={"accessor_id": "a0", "secret_hash": "h0"},
    user={"username": "admin"},
    jwt_key={"nonce": b"n" * 12, "ciphertext": b"k"},
)
# Nodes n1, n2 and job `web` placed as a1 (n1) and a2 (n2); the job is
# submitted at index 4 (setups apply one command per raft entry from index 2).
PLACED = [
    cmd("node.register", node={"id": "n1", "name": "a"}),
    cmd("node.register", node={"id": "n2", "name": "b"}),
    cmd("job.upsert", job=WEB),
    cmd(
        "plan.apply",
        job="web",
        job_modify_index=4,
        job_version=0,
        places=[
            {"id": "a1", "node": "n1", "group": "web", "job_version": 0},
            {"id": "a2", "node": "n2", "group": "web", "job_version": 0},
        ],
        failures=[{"group": "web", "reason": "no nodes"}],
    ),
]
DEPLOYMENT = deployment_id("web", 0, 4)  # PLACED's version 0, submitted at index 4
WEB_V1 = {**WEB, "groups": [{**WEB["groups"][0], "meta": {"v": "1"}}]}
REVERTING = [  # a stable version 0, version 1 (submitted at index 6) rolling out
    *PLACED[:2],
    cmd(
        "job.upsert", job={**WEB, "groups": [{**WEB["groups"][0], "update": {"auto_revert": True}}]}
    ),
    cmd("deployment.status", id=DEPLOYMENT, status="successful"),
    cmd(
        "job.upsert",
        job={**WEB_V1, "groups": [{**WEB_V1["groups"][0], "update": {"auto_revert": True}}]},
    ),
]
DRAINING = [PLACED[0], cmd("node.drain", id="n1", enable=True, deadline_seconds=5)]
# Operations that replace the whole state: they derive no events (a backup
# brings its own event ring), so they record nothing.
WHOLE_STATE = {"state.restore", "state.restore.commit"}


def restore_of(setup: list[dict[str, Any]]) -> dict[str, Any]:
    """A one-part `state.restore` of the state `setup` builds."""
    state = State()
    for index, c in enumerate(copy.deepcopy(setup), start=2):
        apply_batch(state, [c], index)
    body = take_backup(state).body
    sha = hashlib.sha256(body).hexdigest()
    return cmd(
        "state.restore", id="r1", part=0, parts=1, size=len(body), sha256=sha, format=1, data=body
    )


# (setup, the command under test): at least one per operation, each writing
# what its operation can write.
SAMPLES: list[tuple[list[dict[str, Any]], dict[str, Any]]] = [
    ([], cmd("noop")),
    (
        [cmd("server.register", name="s1", raft_address="h:1", api_address="http://h")],
        cmd("server.register", name="s1b", raft_address="h:1", api_address="http://h"),
    ),
    (
        [cmd("server.register", name="s1", raft_address="h:1", api_address="http://h")],
        cmd("server.forget", name="s1"),
    ),
    (PLACED, cmd("job.upsert", job={**WEB, "groups": [{**WEB["groups"][0], "count": 3}]})),
    (PLACED, cmd("job.delete", name="web")),
    (
        PLACED,
        cmd(
            "plan.apply",
            job="web",
            job_modify_index=4,
            job_version=0,
            stops=[{"id": "a1", "lost": True}, {"id": "a2", "reason": "replaced"}],
            places=[{"id": "b1", "node": "n2", "group": "web", "job_version": 0}],
            halted={"web": "unhealthy"},
        ),
    ),
    (
        PLACED,
        cmd(
            "alloc.update",
            node="n1",
            updates=[{"id": "a1", "status": "running"}, {"id": "a1", "healthy": True}],
        ),
    ),
    (PLACED, cmd("alloc.stop", id="a2")),
    (
        PLACED,
        cmd("deployment.progress", id=DEPLOYMENT, groups={"web": {"placed": 2, "healthy": 1}}),
    ),
    (PLACED, cmd("deployment.status", id=DEPLOYMENT, status="successful")),
    (REVERTING, cmd("deployment.status", id=deployment_id("web", 1, 6), status="failed")),
    (
        [*PLACED, cmd("deployment.status", id=DEPLOYMENT, status="blocked-on-promotion")],
        cmd("deployment.promote", id=DEPLOYMENT),
    ),
    ([*PLACED, cmd("job.upsert", job=WEB_V1)], cmd("job.revert", name="web", version=0)),
    (PLACED, cmd("job.scale", name="web", group="web", count=5)),
    (
        [*PLACED, cmd("alloc.update", node="n1", updates=[{"id": "a1", "status": "running"}])],
        cmd("alloc.restart", id="a1", task="web"),
    ),
    (
        [
            *PLACED,
            cmd("alloc.stop", id="a1"),
            cmd("alloc.update", node="n1", updates=[{"id": "a1", "status": "complete"}]),
        ],
        cmd("alloc.gc", ids=["a1", "a2"]),
    ),
    ([], cmd("node.register", node={"id": "n1", "name": "a"})),
    (DRAINING[:1], cmd("node.status", id="n1", status="down")),
    (DRAINING[:1], cmd("node.drain", id="n1", enable=True, deadline_seconds=5)),
    (DRAINING, cmd("node.drain_complete", id="n1")),
    (DRAINING[:1], cmd("node.ingress_applied", id="n1", index=3)),
    (DRAINING[:1], cmd("node.eligibility", id="n1", eligible=False)),
    ([], cmd("secret.put", name="db", version=1, **SECRET)),
    ([cmd("secret.put", name="db", version=1, **SECRET)], cmd("secret.delete", name="db")),
    (
        [
            cmd("secret.put", name="db", version=1, **SECRET),
            cmd("keyring.rotate", key_id="k2"),
        ],
        cmd("secret.reencrypt", name="db", version=1, old_key_id="k1", key_id="k2", **SEALED),
    ),
    ([], cmd("keyring.rotate", key_id="k1")),
    (
        [cmd("keyring.rotate", key_id="k1"), cmd("keyring.rotate", key_id="k2")],
        cmd("keyring.prune"),
    ),
    ([], BOOT),
    ([], cmd("acl.policy.upsert", policy={"name": "p", "rules": {}})),
    (
        [cmd("acl.policy.upsert", policy={"name": "p", "rules": {}})],
        cmd("acl.policy.delete", name="p"),
    ),
    ([], cmd("acl.role.upsert", role={"name": "r"})),
    ([cmd("acl.role.upsert", role={"name": "r"})], cmd("acl.role.delete", name="r")),
    ([], cmd("acl.token.create", token={"accessor_id": "a1", "secret_hash": "h1"})),
    ([BOOT], cmd("acl.token.update", accessor_id="a0", name="renamed")),
    ([BOOT], cmd("acl.token.delete", accessor_id="a0")),
    ([], cmd("acl.user.upsert", user={"username": "bob"})),
    ([BOOT], cmd("acl.user.delete", username="admin")),
    ([BOOT], cmd("auth.session.create", session={**SESSION, "expires_at": 9000})),
    (
        [BOOT, cmd("auth.session.create", session={**SESSION, "expires_at": 9000})],
        cmd("auth.session.rotate", id="s1", expect_jti="j1", jti="j2", refresh_hash="r2"),
    ),
    (
        [BOOT, cmd("auth.session.create", session={**SESSION, "expires_at": 9000})],
        cmd("auth.session.delete", id="s1"),
    ),
    ([], cmd("webhook.create", id=WID, url="http://x/", events=["*"], secret=SEALED)),
    (
        [cmd("webhook.create", id=WID, url="http://x/", events=["*"], secret=SEALED)],
        cmd("webhook.delete", id=WID),
    ),
    (
        [
            cmd("webhook.create", id=WID, url="http://x/", events=["*"], secret=SEALED),
            cmd("node.register", node={"id": "n1", "name": "a"}),
        ],
        cmd("webhook.progress", id=WID, cursor=1),
    ),
    (
        [
            cmd("webhook.create", id=WID, url="http://x/", events=["*"], secret=SEALED),
            cmd("node.register", node={"id": "n1", "name": "a"}),
            cmd("webhook.progress", id=WID, cursor=1),
        ],
        cmd("webhook.redeliver", id=WID, delivery=f"{WID}-1"),
    ),
    ([], cmd("pki.ca.create", cert=CA_PEM, key=SEALED, fingerprint="sha256:ab")),
    (
        PLACED,
        cmd(
            "ingress.put",
            host="a.example.com",
            tls="acme",
            cert=None,
            routes=[{"path": "/", "job": "web", "group": "g", "port": "http"}],
        ),
    ),
    (
        [
            *PLACED,
            cmd(
                "ingress.put",
                host="a.example.com",
                tls="off",
                cert=None,
                routes=[{"path": "/", "job": "web", "group": "g", "port": "http"}],
            ),
        ],
        cmd("ingress.delete", host="a.example.com"),
    ),
    ([], cmd("cert.put", host="a.example.com", fields={"status": "valid", "key": SEALED})),
    ([], cmd("cert.renew", host="a.example.com")),
    ([cmd("cert.renew", host="a.example.com")], cmd("cert.delete", host="a.example.com")),
    ([], cmd("acme.account.put", key=SEALED, url="https://ca/acct/1", directory="https://ca/dir")),
    ([], cmd("acme.challenge.put", host="a.example.com", token="t1", key_authorization="t1.x")),
    (
        [cmd("acme.challenge.put", host="a.example.com", token="t1", key_authorization="t1.x")],
        cmd("acme.challenge.delete", token="t1"),
    ),
    ([], cmd("acme.alpn_challenge.put", host="a.example.com", cert_pem=CA_PEM, key=SEALED)),
    (
        [cmd("acme.alpn_challenge.put", host="a.example.com", cert_pem=CA_PEM, key=SEALED)],
        cmd("acme.alpn_challenge.delete", host="a.example.com"),
    ),
    (DRAINING, restore_of(PLACED)),
    ([*DRAINING, restore_of(PLACED)], cmd("state.restore.commit", id="r1", format=1)),
    ([], cmd("state.restore.abort", id="r1")),
]


def apply_recorded(
    operation: Operation, state: State, command: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """Apply `command` and check that `changes` holds exactly the rows it
    changed in the announced tables, each with the document it replaced
    (nothing for the operations that replace the whole state)."""
    if command["op"] in WHOLE_STATE:
        result = operation(state, command, index, changes)
        assert not changes.tables, command["op"]
        return result
    before = {table: dict(state.table(table)) for table in ANNOUNCED}
    result = operation(state, command, index, changes)
    for table in ANNOUNCED:
        old, new = before[table], state.table(table)
        changed = {k for k in old.keys() | new.keys() if old.get(k) is not new.get(k)}
        recorded = changes.rows(table)
        assert set(recorded) == changed, (command["op"], table)
        assert all(recorded[k][0] is old.get(k) for k in changed), (command["op"], table)
    return result


def test_every_operation_has_a_sample() -> None:
    assert {c["op"] for _, c in SAMPLES} == set(OPERATIONS)


def test_every_op_the_code_proposes_is_in_the_table() -> None:
    proposed: dict[str, str] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for match in PROPOSED.finditer(path.read_text()):
                proposed[match.group(1)] = str(path.relative_to(ROOT))
    assert {"job.upsert", "plan.apply", "noop"} <= set(proposed)  # the scan finds them
    unknown = {op: where for op, where in proposed.items() if op not in OPERATIONS}
    assert not unknown, f"proposed but not in raft.operations.OPERATIONS: {unknown}"


@pytest.mark.parametrize(("setup", "command"), SAMPLES, ids=[c["op"] for _, c in SAMPLES])
def test_every_operation_records_what_it_changes(
    setup: list[dict[str, Any]], command: dict[str, Any]
) -> None:
    state = State()
    for index, c in enumerate(copy.deepcopy(setup), start=2):
        assert apply_batch(state, [c], index)[0]["ok"], c
    index = len(setup) + 2
    result = apply_recorded(OPERATIONS[command["op"]], state, command, index, Changes())
    assert result["ok"], result


def _checked(op: str) -> Operation:
    def operation(
        state: State, command: dict[str, Any], index: int, changes: Changes
    ) -> dict[str, Any]:
        return apply_recorded(OPERATIONS[op], state, command, index, changes)

    return operation


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from([c for _, c in SAMPLES]) | st.sampled_from(PLACED), max_size=30))
def test_recording_holds_in_any_order(commands: list[dict[str, Any]]) -> None:
    """Any sequence of the samples (most refused, some not): the FSM's own
    apply path sees every change recorded."""
    checked = {op: _checked(op) for op in OPERATIONS}
    with mock.patch.object(fsm, "OPERATIONS", checked):
        state = State()
        for index, c in enumerate(copy.deepcopy(commands), start=2):
            apply_batch(state, [c], index)
