"""Events derived by the FSM: which commands say what, once, deterministically."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from raft import fsm_events
from raft.commands import decode_batch, encode_batch, encode_command
from raft.fsm import apply_batch
from raft.fsm_events import (
    EVENT_TYPES,
    first_seq,
    last_seq,
    matches,
    parse_topics,
    scan,
    seq_at_index,
    unknown_topics,
)
from raft.state import State

WEB = {
    "name": "web",
    "type": "service",
    "groups": [{"name": "web", "count": 2, "tasks": [{"name": "web"}]}],
}


def cmd(op: str, ts: int = 1000, **fields: Any) -> dict[str, Any]:
    return {"op": op, "ts": ts, **fields}


class Log:
    """Applies commands through the real encoding, one raft entry per call."""

    def __init__(self) -> None:
        self.state = State()
        self.index = 1

    def apply(self, *commands: dict[str, Any]) -> list[dict[str, Any]]:
        self.index += 1
        entry = encode_batch([encode_command(c) for c in commands])
        return apply_batch(self.state, decode_batch(entry), self.index)

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        return scan(self.state, after, None, 100_000)[0]

    def types(self, after: int = 0) -> list[str]:
        return [e["type"] for e in self.events(after)]


def _cluster_with_job() -> Log:
    log = Log()
    log.apply(cmd("node.register", node={"id": "n1", "name": "a"}))
    log.apply(cmd("node.register", node={"id": "n2", "name": "b"}))
    log.apply(cmd("job.upsert", job=WEB))
    jmi = log.state.table("jobs")["web"]["job_modify_index"]
    places = [
        {"id": "a1", "node": "n1", "group": "web", "job_version": 0},
        {"id": "a2", "node": "n2", "group": "web", "job_version": 0},
    ]
    log.apply(cmd("plan.apply", job="web", job_modify_index=jmi, places=places))
    return log


def test_submit_place_run_deploy_once() -> None:
    log = _cluster_with_job()
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


def test_deployed_once_per_version_and_again_for_a_new_one() -> None:
    log = _cluster_with_job()
    for node, alloc in (("n1", "a1"), ("n2", "a2")):
        log.apply(
            cmd(
                "alloc.update",
                node=node,
                updates=[{"id": alloc, "status": "running", "healthy": True}],
            )
        )
    assert log.types().count("job.deployed") == 1
    # A blip (unhealthy, healthy again) does not announce the same version twice.
    log.apply(cmd("alloc.update", node="n1", updates=[{"id": "a1", "healthy": False}]))
    log.apply(cmd("alloc.update", node="n1", updates=[{"id": "a1", "healthy": True}]))
    assert log.types().count("job.deployed") == 1
    # Version 1 replaces both.
    log.apply(cmd("job.upsert", job=dict(WEB, meta={"v": "2"})))
    jmi = log.state.table("jobs")["web"]["job_modify_index"]
    places = [
        {"id": "b1", "node": "n1", "group": "web", "job_version": 1},
        {"id": "b2", "node": "n2", "group": "web", "job_version": 1},
    ]
    stops = [{"id": "a1", "reason": "replaced"}, {"id": "a2", "reason": "replaced"}]
    log.apply(cmd("plan.apply", job="web", job_modify_index=jmi, places=places, stops=stops))
    for node, alloc in (("n1", "b1"), ("n2", "b2")):
        log.apply(
            cmd(
                "alloc.update",
                node=node,
                updates=[{"id": alloc, "status": "running", "healthy": True}],
            )
        )
    deployed = [e["data"] for e in log.events() if e["type"] == "job.deployed"]
    assert deployed == [
        {"job": "web", "version": 0, "allocations": 2},
        {"job": "web", "version": 1, "allocations": 2},
    ]


def test_alloc_failed_and_lost() -> None:
    log = _cluster_with_job()
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


def test_job_failed_when_the_update_halts_once() -> None:
    log = _cluster_with_job()
    jmi = log.state.table("jobs")["web"]["job_modify_index"]
    halted = {"web": "replacement a1 is unhealthy; submit a new version to continue"}
    for _ in range(2):
        log.apply(cmd("plan.apply", job="web", job_modify_index=jmi, job_version=0, halted=halted))
    failed = [e for e in log.events() if e["type"] == "job.failed"]
    assert len(failed) == 1
    assert failed[0]["data"]["version"] == 0 and "unhealthy" in failed[0]["data"]["reason"]


def test_placement_failures_and_delete_are_job_updates() -> None:
    log = Log()
    log.apply(cmd("job.upsert", job=WEB))
    jmi = log.state.table("jobs")["web"]["job_modify_index"]
    log.apply(
        cmd(
            "plan.apply",
            job="web",
            job_modify_index=jmi,
            failures=[{"group": "web", "reason": "no nodes"}],
        )
    )
    update = log.events()[-1]
    assert update["type"] == "job.updated" and update["data"]["placement_failures"] == 1
    mark = last_seq(log.state)
    log.apply(cmd("job.delete", name="web"))
    assert log.events(mark)[-1]["data"] == {"job": "web", "status": "deleted"}
    assert "job:web" not in log.state.table("event_marks")


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


def test_events_of_one_entry_share_its_index_in_order() -> None:
    log = Log()
    log.apply(
        cmd("node.register", node={"id": "n1", "name": "a"}),
        cmd("node.register", node={"id": "n2", "name": "b"}),
    )
    events = log.events()
    assert [e["index"] for e in events] == [2, 2]
    assert [e["seq"] for e in events] == [1, 2]
    assert [e["data"]["node"] for e in events] == ["n1", "n2"]


def test_ring_is_bounded_and_resumes_by_index(monkeypatch: Any) -> None:
    monkeypatch.setattr(fsm_events, "MAX_EVENTS", 50)
    log = Log()
    sealed = {"key_id": "k1", "nonce": b"n" * 12, "ciphertext": b"x"}
    for v in range(1, 121):
        log.apply(cmd("secret.put", name="s", version=v, **sealed))
    assert len(log.state.table("events")) == 50
    assert (first_seq(log.state), last_seq(log.state)) == (71, 120)
    # secret version v was applied at index v + 1
    assert seq_at_index(log.state, 100) == 99
    assert seq_at_index(log.state, 5) == 70  # before the ring: from its start
    events, scanned = scan(log.state, seq_at_index(log.state, 100), None, 5)
    assert [e["index"] for e in events] == [101, 102, 103, 104, 105] and scanned == 104


def test_scan_keeps_an_index_whole_past_the_limit() -> None:
    log = Log()
    log.apply(*[cmd("node.register", node={"id": f"n{i}", "name": f"n{i}"}) for i in range(5)])
    log.apply(cmd("node.register", node={"id": "z", "name": "z"}))
    events, scanned = scan(log.state, 0, None, 2)
    assert len(events) == 5 and scanned == 5  # all of index 2, not index 3


def test_topics() -> None:
    assert parse_topics(None) is None and parse_topics("*") is None and parse_topics(" ,") is None
    topics = parse_topics("job, node.down")
    assert topics == ("job", "node.down")
    assert matches("job.failed", topics) and matches("node.down", topics)
    assert not matches("node.updated", topics) and not matches("jobx.y", topics)
    assert unknown_topics(["job", "alloc.failed", "*", "bogus", "job.nope"]) == [
        "bogus",
        "job.nope",
    ]
    assert "cert.renewed" in EVENT_TYPES


def test_snapshot_round_trip_keeps_the_ring() -> None:
    log = _cluster_with_job()
    restored = State.from_bytes(log.state.to_bytes())
    assert restored.capture() == log.state.capture()
    assert scan(restored, 0, None, 1000) == scan(log.state, 0, None, 1000)
    # ... and derivation goes on identically from the restored copy.
    c = cmd("alloc.update", node="n1", updates=[{"id": "a1", "status": "running"}])
    apply_batch(log.state, [copy.deepcopy(c)], 99)
    apply_batch(restored, [copy.deepcopy(c)], 99)
    assert restored.capture() == log.state.capture()


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
    log = _cluster_with_job()
    mark = last_seq(log.state)
    jmi = log.state.table("jobs")["web"]["job_modify_index"]
    again = [{"id": "a1", "node": "n1", "group": "web", "job_version": 0}]
    log.apply(cmd("plan.apply", job="web", job_modify_index=jmi, places=again))
    assert log.types(mark) == []


def test_a_smaller_ring_after_an_upgrade_trims_from_the_oldest(monkeypatch: Any) -> None:
    log = Log()
    sealed = {"key_id": "k1", "nonce": b"n" * 12, "ciphertext": b"x"}
    for v in range(1, 31):
        log.apply(cmd("secret.put", name="s", version=v, **sealed))
    monkeypatch.setattr(fsm_events, "MAX_EVENTS", 10)
    log.apply(cmd("secret.put", name="s", version=31, **sealed))
    assert sorted(log.state.table("events")) == list(range(22, 32))
    assert first_seq(log.state) == 22 and len(scan(log.state, 0, None, 100)[0]) == 10
