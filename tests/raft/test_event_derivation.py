"""Events derived from what a command changed (raft.event_derivation): which
changes say what, in which order, whichever operation made them."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from raft.changes import Changes
from raft.event_derivation import RULES, derive
from raft.fsm_events import EVENT_TYPES, last_seq
from raft.state import State
from tests.raft.event_log import WEB, Log, cluster_with_job, cmd


def test_submit_place_run_deploy_once() -> None:
    log = cluster_with_job()
    assert log.types() == [
        "node.updated",
        "node.updated",
        "job.submitted",
        "alloc.updated",
        "alloc.updated",
    ]
    submitted = log.events()[2]
    assert submitted["data"] == {"job": "web", "version": 0, "type": "service", "created": True}
    assert submitted["ts"] == 1000 and submitted["index"] == 4
    mark = last_seq(log.state)
    log.apply(cmd("alloc.update", node="n1", updates=[{"id": "a1", "status": "running"}]))
    assert log.types(mark) == ["alloc.updated", "job.updated"]  # pending -> running
    mark = last_seq(log.state)
    log.apply(cmd("alloc.update", node="n1", updates=[{"id": "a1", "healthy": True}]))
    assert log.types(mark) == ["alloc.updated"]  # one of two healthy: not deployed yet
    mark = last_seq(log.state)
    log.apply(
        cmd("alloc.update", node="n2", updates=[{"id": "a2", "status": "running", "healthy": True}])
    )
    assert log.types(mark) == ["alloc.updated", "job.deployed"]
    assert log.events(mark)[-1]["data"] == {"job": "web", "version": 0, "allocations": 2}
    # The same report again: nothing changed, nothing said.
    mark = last_seq(log.state)
    log.apply(
        cmd("alloc.update", node="n2", updates=[{"id": "a2", "status": "running", "healthy": True}])
    )
    assert log.types(mark) == []


def test_alloc_failed_and_lost() -> None:
    log = cluster_with_job()
    mark = last_seq(log.state)
    log.apply(cmd("alloc.update", node="n1", updates=[{"id": "a1", "status": "failed"}]))
    failed = log.events(mark)[0]
    assert failed["type"] == "alloc.failed"
    assert failed["data"]["alloc"] == "a1" and failed["data"]["previous_status"] == "pending"
    mark = last_seq(log.state)
    log.apply(cmd("node.status", id="n2", status="down"))
    jmi = log.state.table("jobs")["web"]["job_modify_index"]
    log.apply(
        cmd("plan.apply", job="web", job_modify_index=jmi, stops=[{"id": "a2", "lost": True}])
    )
    types = log.types(mark)
    assert types[0] == "node.down"
    assert "alloc.failed" in types
    lost = next(e for e in log.events(mark) if e["type"] == "alloc.failed")
    assert lost["data"]["status"] == "lost" and lost["data"]["node"] == "n2"


def test_nodes_drain_and_re_register() -> None:
    log = Log()
    log.apply(cmd("node.register", node={"id": "n1", "name": "a"}))
    mark = last_seq(log.state)
    log.apply(cmd("node.register", node={"id": "n1", "name": "a"}))  # the agent restarted
    assert log.types(mark) == []
    log.apply(cmd("node.drain", id="n1", enable=True, deadline_seconds=60))
    log.apply(cmd("node.drain_complete", id="n1"))
    actions = [e["data"]["action"] for e in log.events(mark)]
    assert actions == ["drain", "drain complete"]
    log.apply(cmd("node.status", id="n1", status="down"))
    log.apply(cmd("node.register", node={"id": "n1", "name": "a"}))
    assert log.types()[-2:] == ["node.down", "node.updated"]
    assert log.events()[-1]["data"]["status"] == "ready"


def test_secret_events_carry_names_never_values() -> None:
    log = Log()
    sealed = {"key_id": "k1", "nonce": b"n" * 12, "ciphertext": b"SECRET-CIPHERTEXT"}
    log.apply(cmd("secret.put", name="db", version=1, **sealed))
    log.apply(cmd("secret.put", name="db", version=2, **sealed))
    log.apply(cmd("secret.put", name="db", version=3, rollback_of=1, **sealed))
    log.apply(cmd("secret.delete", name="db"))
    events = log.events()
    assert [e["data"]["action"] for e in events] == ["created", "updated", "rolled_back", "deleted"]
    assert {e["type"] for e in events} == {"secret.changed"}
    text = repr(events)
    assert "CIPHERTEXT" not in text and "nonce" not in text and "k1" not in text


def test_refused_and_retried_commands_say_nothing() -> None:
    log = Log()
    log.apply(cmd("job.upsert", job=WEB, rid="r1"))
    log.apply(cmd("job.upsert", job=WEB, rid="r1"))  # a retry: applied once
    log.apply(cmd("job.upsert", job=WEB, cas=12345))  # refused: conflict
    log.apply(cmd("node.status", id="nope", status="down"))  # refused: not found
    assert log.types() == ["job.submitted"]


OPS = st.sampled_from(
    [
        cmd("node.register", node={"id": "n1", "name": "a"}),
        cmd("node.status", id="n1", status="down"),
        cmd("node.status", id="n1", status="ready"),
        cmd("job.upsert", job=WEB),
        cmd("job.delete", name="web"),
        cmd(
            "alloc.update", node="n1", updates=[{"id": "a1", "status": "running", "healthy": True}]
        ),
        cmd("alloc.update", node="n1", updates=[{"id": "a1", "status": "failed"}]),
        cmd("alloc.stop", id="a1"),
        cmd("plan.apply", job="web", job_modify_index=0, places=[]),
        cmd("secret.delete", name="nope"),
        {"op": "alloc.update", "updates": "garbage"},
        {"op": "plan.apply", "job": 5, "stops": [1, None, {"id": 3}]},
    ]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(OPS, min_size=1, max_size=3), max_size=12))
def test_derivation_is_deterministic_and_total(batches: list[list[dict[str, Any]]]) -> None:
    a, b = Log(), Log()
    for batch in batches:
        a.apply(*copy.deepcopy(batch))
        b.apply(*copy.deepcopy(batch))
    assert a.state.to_bytes() == b.state.to_bytes()
    seqs = [e["seq"] for e in a.events()]
    assert seqs == list(range(1, len(seqs) + 1))
    indexes = [e["index"] for e in a.events()]
    assert indexes == sorted(indexes)


def test_a_plan_that_places_an_existing_id_says_nothing_about_it() -> None:
    log = cluster_with_job()
    mark = last_seq(log.state)
    jmi = log.state.table("jobs")["web"]["job_modify_index"]
    again = [{"id": "a1", "node": "n1", "group": "web", "job_version": 0}]
    log.apply(cmd("plan.apply", job="web", job_modify_index=jmi, places=again))
    assert log.types(mark) == []


def test_a_server_that_leaves_is_down_one_that_renames_is_not() -> None:
    log = Log()
    for name, address in (("s1", "h:1"), ("s2", "h:2"), ("s1b", "h:1")):  # s1b replaces s1
        log.apply(cmd("server.register", name=name, raft_address=address, api_address="http://h"))
    assert log.types() == []
    log.apply(cmd("server.forget", name="s2"))
    assert [(e["type"], e["data"]) for e in log.events()] == [
        ("node.down", {"server": "s2", "raft_address": "h:2", "reason": "removed from the cluster"})
    ]


def test_re_encryption_and_forgetting_allocations_say_nothing() -> None:
    log = cluster_with_job()
    sealed = {"nonce": b"n" * 12, "ciphertext": b"x"}
    log.apply(cmd("secret.put", name="db", version=1, key_id="k1", **sealed))
    log.apply(cmd("keyring.rotate", key_id="k2"))
    log.apply(cmd("alloc.stop", id="a1"))
    log.apply(cmd("alloc.update", node="n1", updates=[{"id": "a1", "status": "complete"}]))
    mark = last_seq(log.state)
    reencrypt = cmd("secret.reencrypt", name="db", version=1, old_key_id="k1", key_id="k2")
    results = log.apply({**reencrypt, **sealed}, cmd("alloc.gc", ids=["a1"]))
    assert results[0]["changed"] and results[1]["removed"] == 1
    assert log.types(mark) == []


def test_a_change_says_the_same_whichever_operation_made_it() -> None:
    """The events of a change recorded by hand are those of the operation
    that makes the same change."""
    by_op, by_hand = cluster_with_job(), cluster_with_job()
    by_op.apply(cmd("alloc.update", node="n1", updates=[{"id": "a1", "status": "failed"}]))
    state = by_hand.state
    old = state.table("allocations")["a1"]
    state.table("allocations")["a1"] = by_op.state.table("allocations")["a1"]
    changes = Changes()
    changes.wrote("allocations", "a1", old)
    derived = derive(state, changes)
    assert derived == [(e["type"], e["data"]) for e in by_op.events(last_seq(state))]
    assert [t for t, _ in derived] == ["alloc.failed"]


def test_every_event_type_is_derived() -> None:
    log = cluster_with_job()
    for node, alloc in (("n1", "a1"), ("n2", "a2")):
        update = {"id": alloc, "status": "running", "healthy": True}
        log.apply(cmd("alloc.update", node=node, updates=[update]))
    log.apply(cmd("alloc.update", node="n1", updates=[{"id": "a1", "status": "failed"}]))
    (deployment,) = log.state.deployments_of("web")  # a version with a deployment fails with it
    log.apply(cmd("deployment.status", id=deployment["id"], status="failed"))
    log.apply(cmd("node.status", id="n2", status="down"))
    log.apply(cmd("secret.delete", name="nope"), cmd("secret.delete", name="nope"))
    sealed = {"key_id": "k1", "nonce": b"n" * 12, "ciphertext": b"x"}
    log.apply(cmd("secret.put", name="db", version=1, **sealed))
    routes = [{"path": "/", "job": "web", "group": "web", "port": "http"}]
    log.apply(cmd("ingress.put", host="a.example.com", routes=routes, tls="acme", cert=None))
    log.apply(cmd("cert.put", host="a.example.com", fields={"failures": 1, "last_error": "x"}))
    log.apply(cmd("cert.put", host="a.example.com", fields={"status": "valid", "sha256": "ab"}))
    assert set(log.types()) == set(EVENT_TYPES)


class _Reads(dict[str, Any]):
    """A change set's tables that note which tables were asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


def test_each_rule_reads_the_changes_of_its_tables_only() -> None:
    """A rule runs when one of its tables changed: it must read no other."""
    for tables, rule in RULES:
        changes = Changes()
        changes.tables = reads = _Reads()
        assert rule(State(), changes) == []
        assert reads.asked == tables, rule.__name__
