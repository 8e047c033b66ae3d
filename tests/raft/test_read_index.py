"""raft.read_index: the ReadIndex protocol, both sides, against fake peers."""

from __future__ import annotations

from typing import Any

from raft.read_index import PING, PONG, READ_REPLY, READ_REQUEST, REQUEST_TIMEOUT, ReadIndex


class FakePeers:
    """One server's view of the cluster; `sent` records what it sent."""

    def __init__(self, me: str, members: list[str], leader: str | None) -> None:
        self.me = me
        self.members = members
        self.leader_id = leader
        self.current_term = 3
        self.commit = 10
        self.in_term = True
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.connected = True

    def is_leader(self) -> bool:
        return self.leader_id == self.me

    def term(self) -> int:
        return self.current_term

    def commit_index(self) -> int:
        return self.commit

    def committed_in_term(self) -> bool:
        return self.in_term

    def leader(self) -> str | None:
        return self.leader_id

    def voters(self) -> list[str]:
        return [m for m in self.members if m != self.me]

    def send(self, node: str, message: dict[str, Any]) -> bool:
        self.sent.append((node, message))
        return self.connected


class Server:
    def __init__(self, me: str, members: list[str], leader: str | None) -> None:
        self.peers = FakePeers(me, members, leader)
        self.answers: list[tuple[Any, int | None, str]] = []
        self.now = 100.0
        self.reads = ReadIndex(
            self.peers,
            lambda token, index, reason: self.answers.append((token, index, reason)),
            ok="ok",
            not_leader="not_leader",
            no_leader="no_leader",
            retry="retry",
            clock=lambda: self.now,
        )

    def take_sent(self) -> list[tuple[str, dict[str, Any]]]:
        sent, self.peers.sent = self.peers.sent, []
        return sent


MEMBERS = ["a", "b", "c"]


def cluster() -> dict[str, Server]:
    return {m: Server(m, MEMBERS, "a") for m in MEMBERS}


def deliver(servers: dict[str, Server], sender: str) -> None:
    """Hand everything `sender` sent to its recipients."""
    for target, message in servers[sender].take_sent():
        assert servers[target].reads.on_message(sender, message)


def test_a_follower_gets_the_commit_index_once_a_majority_confirmed_the_leader() -> None:
    s = cluster()
    s["b"].reads.request("t1")
    assert s["b"].peers.sent == [("a", {"type": READ_REQUEST, "id": 1})]
    deliver(s, "b")
    pings = s["a"].take_sent()
    assert sorted(t for t, _ in pings) == ["b", "c"] and all(m["type"] == PING for _, m in pings)
    s["a"].peers.commit = 15  # commits after the request arrived do not move its index
    assert s["c"].reads.on_message("a", pings[[t for t, _ in pings].index("c")][1])
    deliver(s, "c")  # c's pong: with the leader that is a majority of three
    deliver(s, "a")  # the reply
    assert s["b"].answers == [("t1", 10, "ok")]


def test_the_leader_answers_itself_after_the_same_confirmation() -> None:
    s = cluster()
    s["a"].reads.request("t")
    assert s["a"].answers == []
    deliver(s, "a")
    deliver(s, "b")
    assert s["a"].answers == [("t", 10, "ok")]


def test_a_pong_to_an_older_ping_or_from_another_term_confirms_nothing() -> None:
    s = cluster()
    s["a"].reads.request("first")
    pings = s["a"].take_sent()
    s["a"].reads.request("second")  # a new ping round, seq 2
    s["a"].take_sent()
    # b answers the first round only: that does not prove leadership for the second
    s["b"].reads.on_message("a", pings[0][1])
    deliver(s, "b")
    assert [t for t, _, _ in s["a"].answers] == ["first"]
    s["a"].reads.on_message("c", {"type": PONG, "seq": 2, "term": 2})  # an old term
    assert [t for t, _, _ in s["a"].answers] == ["first"]
    s["a"].reads.on_message("c", {"type": PONG, "seq": 2, "term": 3})
    assert [t for t, _, _ in s["a"].answers] == ["first", "second"]


def test_a_leader_that_has_not_committed_in_its_term_refuses() -> None:
    s = cluster()
    s["a"].peers.in_term = False
    s["b"].reads.request("t")
    deliver(s, "b")
    assert not any(m["type"] == PING for _, m in s["a"].peers.sent)
    deliver(s, "a")
    assert s["b"].answers == [("t", None, "retry")]
    s["a"].reads.request("own")
    assert s["a"].answers == [("own", None, "not_leader")]


def test_a_deposed_leader_refuses_what_waits_and_a_follower_refuses_requests() -> None:
    s = cluster()
    s["a"].reads.request("t")
    s["a"].take_sent()
    s["a"].peers.leader_id = "b"  # deposed before a majority answered
    s["a"].peers.current_term = 4
    s["a"].reads.tick()
    assert s["a"].answers == [("t", None, "not_leader")]
    s["c"].reads.on_message("b", {"type": READ_REQUEST, "id": 9})  # c is no leader
    assert s["c"].peers.sent == [("b", {"type": READ_REPLY, "id": 9, "ok": False, "index": None})]


def test_lost_messages_end_in_a_retryable_answer() -> None:
    s = cluster()
    s["b"].reads.request("lost")
    s["b"].take_sent()  # the request never arrives
    s["b"].now += REQUEST_TIMEOUT / 2
    s["b"].reads.tick()
    assert s["b"].answers == []
    s["b"].now += REQUEST_TIMEOUT
    s["b"].reads.tick()
    assert s["b"].answers == [("lost", None, "retry")]
    s["a"].reads.request("unconfirmed")  # no follower ever answers the ping
    s["a"].now += 2 * REQUEST_TIMEOUT
    s["a"].reads.tick()
    assert s["a"].answers == [("unconfirmed", None, "not_leader")]


def test_no_leader_or_no_connection_is_answered_at_once() -> None:
    s = Server("b", MEMBERS, None)
    s.reads.request("t")
    assert s.answers == [("t", None, "no_leader")]
    s = Server("b", MEMBERS, "a")
    s.peers.connected = False
    s.reads.request("t")
    assert s.answers == [("t", None, "no_leader")]


def test_a_sole_voter_confirms_itself_and_other_messages_are_left_to_raft() -> None:
    s = Server("a", ["a"], "a")
    s.reads.request("t")
    assert s.answers == [("t", 10, "ok")]
    assert not s.reads.on_message("b", {"type": "append_entries"})
    assert s.reads.on_message("b", {"type": READ_REPLY})  # malformed, but ours: swallowed
