"""What the raft node reports to the bridge: completions, and when.

A completion is `(token, result, reason)`: the token the bridge gave with a
proposal or a read-index request, the FSM's results or the read index, and
one of the reasons below (independent of pysyncobj's numbering).

`Completions` collects a tick's completions and hands them over in one call,
so the asyncio side is woken once per tick, not once per request, and never
hands over a write's acknowledgement before the journal is on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raft.journal import Journal

OK = "ok"
NOT_LEADER = "not_leader"
NO_LEADER = "no_leader"
DISCARDED = "discarded"
DENIED = "denied"
QUEUE_FULL = "queue_full"
UNKNOWN = "unknown_outcome"  # retried with the same request id, so it applies once

Completion = tuple[Any, Any, str]  # (token, result, reason)


class Completions:
    """A tick's completions (tick thread only)."""

    def __init__(self, journal: Journal, hand_over: Callable[[list[Completion], int], None]):
        self._journal = journal
        self._hand_over = hand_over
        self._done: list[Completion] = []
        self._acks_write = False  # a completion in _done acknowledges a write

    def write_done(self, token: Any, result: Any, reason: str) -> None:
        self._acks_write = True
        self._done.append((token, result, reason))

    def read_done(self, token: Any, index: int | None, reason: str) -> None:
        self._done.append((token, index, reason))  # acknowledges no write

    def __bool__(self) -> bool:
        return bool(self._done)

    def deliver(self, is_leader: bool, applied: int) -> None:
        """Hand everything over, never an acknowledged write before the
        journal is on disk.

        A follower's completions that acknowledge no write (read indexes) go
        first and the flush after: what a follower applied, the leader flushed
        before it sent the commit index, so such a read shows nothing less
        durable than a write's acknowledgement.
        """
        mark = self._journal.mark()
        grew = not self._journal.flushed(mark)
        done, self._done = self._done, []
        acks_write, self._acks_write = self._acks_write, False
        if grew and (acks_write or is_leader):
            self._journal.flush(mark)
            grew = False
        self._hand_over(done, applied)
        if grew:
            self._journal.flush(mark)
