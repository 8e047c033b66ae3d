"""Raft's ReadIndex for consistent reads: a read needs no log entry.

A server that wants to serve a consistent read asks the leader for a *read
index*; once it has applied that index, its state holds every write that was
acknowledged before the read started. pysyncobj has no ReadIndex, so this
runs over its transport as four message types of our own (raft.node routes
them here before pysyncobj sees them):

- ``hc_read_index`` (any server -> leader), ``hc_read_index_reply`` (back):
  the index, or a retryable refusal;
- ``hc_read_ping`` (leader -> every voter) and ``hc_read_pong`` (back): the
  leader's proof that it still leads.

The leader answers with the commit index it had when the request arrived,
but only after (1) it has committed an entry of its own term (pysyncobj's
no-op after an election: before that its commit index may lag what earlier
leaders committed) and (2) a majority, counting itself, answered a ping sent
after the request arrived while still in the leader's term. A member that
answers in term T has voted in no later term, and any two majorities share a
member, so no later leader existed when the request arrived: every write
acknowledged before the read started is at or below the index.

Compared to a barrier entry this saves the journal writes, the apply on every
server and two of the messages: a read on a follower costs the follower one
request and one reply, and the leader one ping round shared by every request
that arrived before it left. Everything here runs on the raft tick thread.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol

READ_REQUEST = "hc_read_index"
READ_REPLY = "hc_read_index_reply"
PING = "hc_read_ping"
PONG = "hc_read_pong"
TYPES = frozenset({READ_REQUEST, READ_REPLY, PING, PONG})

# A request unanswered this long is failed as retryable (its message or its
# answer was lost with a connection); the caller asks again.
REQUEST_TIMEOUT = 1.0

Complete = Callable[[Any, "int | None", str], None]  # (token, index, reason)


class Peers(Protocol):
    """What the protocol needs from the raft library (raft.pysyncobj_glue.Peers)."""

    def is_leader(self) -> bool: ...
    def term(self) -> int: ...
    def commit_index(self) -> int: ...
    def committed_in_term(self) -> bool: ...
    def leader(self) -> Any | None: ...
    def voters(self) -> list[Any]: ...  # the other voting members
    def send(self, node: Any, message: dict[str, Any]) -> bool: ...


class ReadIndex:
    """Both sides of the protocol for one server; tick thread only.

    ``complete(token, index, reason)`` reports the answer to a `request`:
    reason ``ok`` with the read index, or one of ``not_leader``, ``no_leader``,
    ``discarded`` (all retryable) with None.
    """

    def __init__(
        self,
        peers: Peers,
        complete: Complete,
        ok: str,
        not_leader: str,
        no_leader: str,
        retry: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.peers = peers
        self._complete = complete
        self._ok, self._not_leader, self._no_leader, self._retry = ok, not_leader, no_leader, retry
        self._clock = clock
        self._ids = itertools.count(1)
        self._mine: dict[int, tuple[Any, float]] = {}  # request id -> (token, asked at)
        # leader side
        self._term = -1
        self._seq = 0
        self._pongs: dict[Any, int] = {}  # member id -> highest ping seq it answered
        # (seq, read index, requester, its id, arrived at)
        self._waiting: list[tuple[int, int, Any, int, float]] = []

    # --- the asking side ----------------------------------------------------
    def request(self, token: Any) -> None:
        rid = next(self._ids)
        self._mine[rid] = (token, self._clock())
        if self.peers.is_leader():
            self._serve(None, rid)
            return
        leader = self.peers.leader()
        if leader is None or not self.peers.send(leader, {"type": READ_REQUEST, "id": rid}):
            self._answer_mine(rid, None, self._no_leader)

    def _answer_mine(self, rid: int, index: int | None, reason: str) -> None:
        entry = self._mine.pop(rid, None)
        if entry is not None:
            self._complete(entry[0], index, reason)

    # --- messages -------------------------------------------------------------
    def on_message(self, node: Any, message: dict[str, Any]) -> bool:
        """Handle one of our messages (True), or leave it to raft (False)."""
        kind = message.get("type")
        if kind not in TYPES:
            return False
        try:
            if kind == READ_REQUEST:
                self._serve(node, int(message["id"]))
            elif kind == READ_REPLY:
                index = message.get("index")
                reason = self._ok if message.get("ok") else self._retry
                self._answer_mine(int(message["id"]), index if reason == self._ok else None, reason)
            elif kind == PING:
                self.peers.send(
                    node, {"type": PONG, "seq": message["seq"], "term": self.peers.term()}
                )
            else:
                self._on_pong(node, message)
        except (KeyError, TypeError, ValueError):
            pass  # a malformed message of ours: its sender times out and retries
        return True

    # --- the leader's side ---------------------------------------------------
    def _serve(self, requester: Any, rid: int) -> None:
        if not self.peers.is_leader():
            self._reply(requester, rid, None)
            return
        if not self.peers.committed_in_term():
            self._reply(requester, rid, None)  # a fresh leader: ask again in a moment
            return
        term = self.peers.term()
        if term != self._term:
            self._term, self._pongs = term, {}
        self._seq += 1
        self._waiting.append((self._seq, self.peers.commit_index(), requester, rid, self._clock()))
        ping = {"type": PING, "seq": self._seq, "term": term}
        for member in self.peers.voters():
            self.peers.send(member, ping)
        self._release()

    def _on_pong(self, node: Any, message: dict[str, Any]) -> None:
        if not self.peers.is_leader() or message.get("term") != self._term:
            return  # an answer in another term proves nothing about this one
        if self.peers.term() != self._term:
            return
        key = getattr(node, "id", node)
        self._pongs[key] = max(self._pongs.get(key, 0), int(message["seq"]))
        self._release()

    def _release(self) -> None:
        """Answer every waiting request a majority has confirmed."""
        members = len(self.peers.voters()) + 1
        still = []
        for waiting in self._waiting:
            seq, index, requester, rid, _ = waiting
            votes = 1 + sum(1 for s in self._pongs.values() if s >= seq)
            if 2 * votes > members:
                self._reply(requester, rid, index)
            else:
                still.append(waiting)
        self._waiting = still

    def _reply(self, requester: Any, rid: int, index: int | None) -> None:
        if requester is None:  # this server asked itself
            reason = self._ok if index is not None else self._not_leader
            self._answer_mine(rid, index, reason)
        else:
            self.peers.send(
                requester, {"type": READ_REPLY, "id": rid, "ok": index is not None, "index": index}
            )

    # --- housekeeping, once per tick ----------------------------------------------
    def tick(self) -> None:
        stale = self._clock() - REQUEST_TIMEOUT
        if self._waiting:
            deposed = not self.peers.is_leader() or self.peers.term() != self._term
            if deposed or self._waiting[0][4] < stale:  # no majority answers: refuse
                refused = [w for w in self._waiting if deposed or w[4] < stale]
                self._waiting = [w for w in self._waiting if not (deposed or w[4] < stale)]
                for _, _, requester, rid, _ in refused:
                    self._reply(requester, rid, None)
        if self._mine:
            for rid in [r for r, (_, at) in self._mine.items() if at < stale]:
                self._answer_mine(rid, None, self._retry)
