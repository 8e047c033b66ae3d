"""What a follower does with pysyncobj's `append_entries` that pysyncobj gets wrong.

**Raft's append rule.** pysyncobj deletes every entry after `prevLogIdx` and
appends the message's entries, so each time a leader sends again entries the
follower already has (pysyncobj's leader did after every acknowledgement,
raft.pysyncobj_glue stops that; it still does after a refused append or a
reconnection), the follower truncates and rewrites them, applied ones
included, with a CRITICAL "state machine may have diverged" line in a healthy
cluster, and drops entries it had acknowledged.
Raft (§5.3) deletes only from the first entry that *conflicts* (same index,
another term) and acknowledges only what the message covers. `match_append`
rewrites the message so that pysyncobj does exactly that: the leading entries
this log holds identically (term and command bytes) are left out, and when
nothing is new the message becomes a heartbeat at this log's last entry whose
acknowledgement and commit index stop at the message's last entry. An applied
entry that differs raises `LogDiverged`: the server stops instead of going on.

**Acknowledgements after the flush.** pysyncobj answers an append at once, so
a follower acknowledged entries that were still only in the page cache.
`HeldAcks` keeps its answers (`next_node_idx`) until raft.node has flushed
the journal, once after each poll (one flush for all the appends it brought),
then sends them in order, consecutive successes to a node as one (the leader
keeps the highest): no CPU per write is added (docs/performance.md #11). A
success whose entry is no longer in the log with the same term (truncated
meanwhile) is dropped: the leader asks again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from raft.fatal import LogDiverged

Entry = tuple[bytes, int, int]  # (command, index, term), as pysyncobj keeps them
EntryAt = Callable[[int], Entry | None]

DIVERGED = (
    "; this server's state has diverged from the cluster's, so it stops instead of "
    "going on with it: replace its data directory with a copy of a healthy server's, "
    "or remove it from the cluster and add it back empty"
)


def already_held(entry_at: EntryAt, entries: Sequence[Entry], applied: int) -> int:
    """How many of the leading `entries` this log already holds, identical."""
    held = 0
    for command, index, term in entries:
        mine = entry_at(index)
        if mine is None:
            break
        if mine[2] != term:
            if index <= applied:
                raise LogDiverged(
                    f"raft: entry {index}, applied here with term {mine[2]}, is an entry of "
                    f"term {term} on the leader{DIVERGED}"
                )
            break  # a conflict in what is not applied: pysyncobj truncates from here
        if mine[0] != command:
            raise LogDiverged(
                f"raft: entry {index} of term {term} holds another command here than on "
                f"the leader{DIVERGED}"
            )
        held += 1
    return held


def match_append(
    message: dict[str, Any], entry_at: EntryAt, last: Entry, applied: int
) -> tuple[dict[str, Any], int | None]:
    """The append to hand pysyncobj, and the highest next index its success
    answer may claim (None: what pysyncobj says). `last` is this log's last entry."""
    prev = message["prevLogIdx"]
    if prev == last[1] or "transmission" in message:
        return message, None  # the usual case: entries that follow ours
    held_prev = entry_at(prev)
    if held_prev is None or held_prev[2] != message["prevLogTerm"]:
        return message, None  # pysyncobj answers "go back"
    entries = message.get("entries") or []
    held = already_held(entry_at, entries, applied)
    if held < len(entries):
        if held == 0:
            return message, None  # the first entry conflicts (not applied): truncate from it
        _, index, term = entries[held - 1]
        return {
            **message,
            "prevLogIdx": index,
            "prevLogTerm": term,
            "entries": entries[held:],
        }, None
    # Nothing new: a heartbeat at our last entry truncates nothing; what the
    # leader sent is all this answer may acknowledge, and all it may commit.
    covered = prev + len(entries)
    return {
        **message,
        "prevLogIdx": last[1],
        "prevLogTerm": last[2],
        "entries": [],
        "commit_index": min(message["commit_index"], covered),
    }, covered + 1


class HeldAcks:
    """A follower's answers to appends, sent once the journal is flushed."""

    def __init__(self, entry_at: EntryAt, last_index: Callable[[], int], send: Callable[..., Any]):
        self._entry_at = entry_at
        self._last_index = last_index
        self._send = send
        self._held: list[tuple[Any, dict[str, Any], int | None]] = []
        self.cap: int | None = None  # set by the append being handled (match_append)

    def hold(
        self,
        node: Any,
        reset: bool = False,
        nextNodeIdx: int | None = None,  # noqa: N803 - pysyncobj's keyword
        success: bool = False,
    ) -> None:
        """pysyncobj's `__sendNextNodeIdx`, deferred."""
        index = self._last_index() + 1 if nextNodeIdx is None else nextNodeIdx
        if success and self.cap is not None:
            index = min(index, self.cap)
        term = None
        if success:
            entry = self._entry_at(index - 1)
            term = entry[2] if entry is not None else -1
            if self._held:  # a success right after another one to the same node says more
                last_node, last, _ = self._held[-1]
                if last_node is node and last["success"]:
                    if last["next_node_idx"] >= index:
                        return
                    self._held.pop()
        message = {
            "type": "next_node_idx",
            "next_node_idx": index,
            "reset": reset,
            "success": success,
        }
        self._held.append((node, message, term))

    def __bool__(self) -> bool:
        return bool(self._held)

    def release(self) -> None:
        """The journal is flushed: send what was held, in order."""
        if not self._held:
            return
        held, self._held = self._held, []
        for node, message, term in held:
            if term is not None:
                entry = self._entry_at(message["next_node_idx"] - 1)
                if entry is None or entry[2] != term:
                    continue  # no longer true; the leader will ask again
            self._send(node, message)
