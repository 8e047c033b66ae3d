"""The event stream (raft.fsm_events): seq numbering, the bounded ring,
resuming by index, topics, snapshots."""

from __future__ import annotations

import copy
from typing import Any

from raft import fsm_events
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
from tests.raft.event_log import Log, cluster_with_job, cmd


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
    log = cluster_with_job()
    restored = State.from_bytes(log.state.to_bytes())
    assert restored.capture() == log.state.capture()
    assert scan(restored, 0, None, 1000) == scan(log.state, 0, None, 1000)
    # ... and derivation goes on identically from the restored copy.
    c = cmd("alloc.update", node="n1", updates=[{"id": "a1", "status": "running"}])
    apply_batch(log.state, [copy.deepcopy(c)], 99)
    apply_batch(restored, [copy.deepcopy(c)], 99)
    assert restored.capture() == log.state.capture()


def test_a_smaller_ring_after_an_upgrade_trims_from_the_oldest(monkeypatch: Any) -> None:
    log = Log()
    sealed = {"key_id": "k1", "nonce": b"n" * 12, "ciphertext": b"x"}
    for v in range(1, 31):
        log.apply(cmd("secret.put", name="s", version=v, **sealed))
    monkeypatch.setattr(fsm_events, "MAX_EVENTS", 10)
    log.apply(cmd("secret.put", name="s", version=31, **sealed))
    assert sorted(log.state.table("events")) == list(range(22, 32))
    assert first_seq(log.state) == 22 and len(scan(log.state, 0, None, 100)[0]) == 10
