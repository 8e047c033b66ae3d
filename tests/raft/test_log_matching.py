"""A follower and the entries a leader sends again (raft.pysyncobj_follower).

Unit tests of Raft's append rule over a list, then both cases through real
raft nodes: a leader re-sending entries the follower applied (what pysyncobj
does after every acknowledgement) changes nothing and logs nothing; a
re-sent applied entry that differs stops the follower with `LogDiverged`,
its log untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raft.fatal import EXIT_DIVERGED, LogDiverged
from raft.pysyncobj_follower import HeldAcks, already_held, match_append
from tests.raft.raft_nodes import Cluster, replace_entry, resend_from, wait_for

# --- the rule, over a list ------------------------------------------------------------

LOG = [(b"noop", 1, 0), (b"a", 2, 1), (b"b", 3, 1), (b"c", 4, 1), (b"d", 5, 2)]


def entry_at(index: int) -> Any:
    return LOG[index - 1] if 1 <= index <= len(LOG) else None


def append(prev: int, entries: list[Any], commit: int = 5) -> dict[str, Any]:
    prev_term = LOG[prev - 1][2]
    return {
        "type": "append_entries",
        "term": 2,
        "commit_index": commit,
        "prevLogIdx": prev,
        "prevLogTerm": prev_term,
        "entries": entries,
    }


def test_entries_that_follow_the_log_pass_unchanged() -> None:
    message = append(5, [(b"e", 6, 2)])
    assert match_append(message, entry_at, LOG[-1], applied=5) == (message, None)


def test_a_resend_of_held_entries_truncates_nothing_and_acknowledges_only_what_it_covers() -> None:
    message = append(1, [LOG[1], LOG[2]], commit=5)
    rewritten, cap = match_append(message, entry_at, LOG[-1], applied=5)
    # a heartbeat at our last entry: pysyncobj deletes nothing after it
    assert (rewritten["prevLogIdx"], rewritten["prevLogTerm"], rewritten["entries"]) == (5, 2, [])
    assert rewritten["commit_index"] == 3 and cap == 4  # entries 2..3, nothing beyond


def test_a_resend_followed_by_new_entries_keeps_the_held_ones() -> None:
    message = append(3, [LOG[3], LOG[4], (b"e", 6, 2)])
    rewritten, cap = match_append(message, entry_at, LOG[-1], applied=5)
    assert (rewritten["prevLogIdx"], rewritten["prevLogTerm"]) == (5, 2)
    assert rewritten["entries"] == [(b"e", 6, 2)] and cap is None


def test_a_conflict_after_the_applied_entries_is_left_to_pysyncobj_to_truncate() -> None:
    message = append(3, [LOG[3], (b"x", 5, 3)])
    rewritten, cap = match_append(message, entry_at, LOG[-1], applied=4)
    assert (rewritten["prevLogIdx"], rewritten["entries"], cap) == (4, [(b"x", 5, 3)], None)


@pytest.mark.parametrize("different", [(b"b", 3, 2), (b"B", 3, 1)], ids=["term", "command"])
def test_an_applied_entry_that_differs_is_divergence(different: Any) -> None:
    with pytest.raises(LogDiverged, match="entry 3"):
        match_append(append(1, [LOG[1], different]), entry_at, LOG[-1], applied=3)
    assert LogDiverged.exit_code == EXIT_DIVERGED


def test_an_unapplied_entry_with_its_term_but_other_bytes_is_divergence_too() -> None:
    with pytest.raises(LogDiverged):
        already_held(entry_at, [(b"other", 5, 2)], applied=1)


def test_held_answers_go_in_order_and_a_success_that_no_longer_holds_is_dropped() -> None:
    log = dict(enumerate(LOG, start=1))
    sent: list[Any] = []
    acks = HeldAcks(
        log.get,
        lambda: max(log),
        lambda node, m: sent.append((node, m["next_node_idx"], m["success"])),
    )
    acks.hold("n", nextNodeIdx=4, success=True)
    acks.hold("n", nextNodeIdx=5, success=True)  # says more: replaces the one before
    acks.hold("n", nextNodeIdx=3, success=True)  # says less: adds nothing
    acks.hold("n", reset=True)  # pysyncobj's "go back": the next index is ours
    acks.hold("m", nextNodeIdx=6, success=True)
    acks.hold("m", nextNodeIdx=4, success=True)
    assert not sent
    log[5] = (b"d'", 5, 3)  # truncated and replaced before the flush
    acks.release()
    assert sent == [("n", 5, True), ("n", 6, False)]  # m's 6 no longer holds


# --- through the raft layer ---------------------------------------------------------


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, 2)
    try:
        yield cluster
    finally:
        cluster.stop()


def test_a_leader_resending_applied_entries_truncates_nothing(
    two: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    two.write(20)
    leader = two.leader()
    follower = next(n for n in two.nodes if n is not leader)
    wait_for(lambda: follower.raft.applied_index >= leader.raft.commit_index, what="apply")
    before = follower.entries()
    applied = follower.raft.applied_index
    seen: list[int] = []
    route = follower.raft._on_message

    def spy(node: Any, message: Any) -> bool:
        if isinstance(message, dict) and message.get("entries"):
            seen.append(message["prevLogIdx"])
        return route(node, message)

    follower.on_tick(lambda sync: sync.route_messages(spy))
    caplog.set_level(logging.DEBUG)

    resend_from(leader, follower, 2)
    wait_for(lambda: 1 in seen, what="the re-sent entries")
    two.write(5, "after")  # and the cluster goes on

    assert follower.entries()[: len(before)] == before
    assert follower.raft.applied_index > applied and not follower.fatal
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@pytest.mark.parametrize("change", ["command", "term"])
def test_an_applied_entry_the_leader_sends_differently_stops_the_follower(
    two: Cluster, change: str
) -> None:
    two.write(20)
    leader = two.leader()
    follower = next(n for n in two.nodes if n is not leader)
    wait_for(lambda: follower.raft.applied_index >= leader.raft.commit_index, what="apply")
    before = follower.entries()
    index = before[5][1]
    if change == "command":
        replace_entry(leader, index, command=b"\x01other")
    else:
        replace_entry(leader, index, term=before[5][2] + 7)

    resend_from(leader, follower, 2)
    error = wait_for(lambda: follower.fatal, what="the follower to stop")[0]

    assert isinstance(error, LogDiverged) and f"entry {index}" in str(error)
    assert follower.raft.failed is error
    assert follower.entries()[: len(before)] == before  # nothing truncated or replaced
