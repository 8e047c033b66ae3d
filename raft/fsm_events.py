"""Events: the stream's types and topics, and the ring the FSM appends them to.

The FSM derives events from what each command changed (raft.event_derivation).
Every server applies the same commands, so every server derives the same
events, with the same sequence numbers, into the same bounded ring (table
`events`, seq -> event). A client can therefore follow the stream on any
server and resume anywhere with the raft index (`?index=`) or a seq, and the
webhook deliverer on a new leader finds exactly what the old one had.

Pure like the rest of the FSM: the timestamp is the command's `ts`, and
nothing here raises into raft (a bug costs the events of one command, logged,
never the apply). Events carry names, ids and statuses: never secret values,
never job specs.

An event: `{"seq", "index", "type", "ts", "data"}`. `seq` numbers events
1, 2, 3...; several events (of one command or of one raft entry) may share an
`index`. The last seq is kept in `event_marks` (row `seq`), so the numbering
goes on after the ring dropped its oldest events.
"""

from __future__ import annotations

from typing import Any

from raft.state import State

EVENT_TYPES: tuple[str, ...] = (
    "job.submitted",  # a job (or a new version of it) was accepted
    "job.updated",  # a job's status changed, it cannot be placed, or it was deleted
    "job.deployed",  # every replica of its latest version runs and is healthy
    "job.failed",  # a version's deployment failed (rolled back with auto_revert, else halted)
    "alloc.updated",  # an allocation was placed, changed status or health, was stopped
    "alloc.failed",  # an allocation failed or was lost with its node
    "node.updated",  # a node registered, came back, drains, changed eligibility
    "node.down",  # a node missed its heartbeats, or a server left the cluster
    "secret.changed",  # a secret got a new version or was deleted (names only)
    "cert.renewed",  # a TLS certificate was obtained or renewed
    "cert.failed",  # an order for a certificate failed (it is retried with backoff)
    "ingress.updated",  # a domain's routes or certificate changed
)
TOPICS = tuple(sorted({t.split(".", 1)[0] for t in EVENT_TYPES}))
MAX_EVENTS = 10_000  # the ring: older events are dropped
EVENTS = "events"
MARKS = "event_marks"
SEQ_ROW = "seq"

Event = dict[str, Any]
Derived = list[tuple[str, dict[str, Any]]]  # (type, data) of events not yet appended


# --- topics ------------------------------------------------------------------------
def parse_topics(value: str | None) -> tuple[str, ...] | None:
    """`job,node.down` -> ("job", "node.down"); None or `*` means every event."""
    if value is None:
        return None
    topics = tuple(t.strip() for t in value.split(",") if t.strip())
    return None if not topics or "*" in topics else topics


def unknown_topics(topics: tuple[str, ...] | list[str]) -> list[str]:
    return [t for t in topics if t != "*" and t not in EVENT_TYPES and t not in TOPICS]


def matches(event_type: str, topics: tuple[str, ...] | list[str] | None) -> bool:
    """A topic is an exact type (`job.failed`), a prefix (`job`) or `*`."""
    if topics is None:
        return True
    return any(t == "*" or t == event_type or event_type.startswith(t + ".") for t in topics)


# --- the ring ---------------------------------------------------------------------
def last_seq(state: State) -> int:
    return state.table(MARKS).get(SEQ_ROW, 0)


def first_seq(state: State) -> int:
    """The oldest seq still in the ring (last + 1 when it is empty)."""
    last = last_seq(state)
    return max(1, last - len(state.table(EVENTS)) + 1)


def emit(state: State, event_type: str, data: dict[str, Any], ts: int, index: int) -> Event:
    """Append one event."""
    marks = state.table(MARKS)
    seq = marks.get(SEQ_ROW, 0) + 1
    marks[SEQ_ROW] = seq
    event = {"seq": seq, "index": index, "type": event_type, "ts": ts, "data": data}
    events = state.table(EVENTS)
    events[seq] = event
    excess = len(events) - MAX_EVENTS
    if excess > 0:  # the ring holds seqs first..seq, contiguous: drop the oldest
        first = seq - len(events) + 1
        for old in range(first, first + excess):
            events.pop(old, None)
    state.touch(EVENTS, index)
    return event


def seq_at_index(state: State, index: int) -> int:
    """The last seq whose event index is <= `index` (first_seq - 1 if none is)."""
    events = state.table(EVENTS)
    lo, hi = first_seq(state), last_seq(state)
    found = lo - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if events[mid]["index"] <= index:
            found, lo = mid, mid + 1
        else:
            hi = mid - 1
    return found


def scan(
    state: State,
    after: int,
    topics: tuple[str, ...] | list[str] | None = None,
    limit: int = 1000,
) -> tuple[list[Event], int]:
    """(events with a seq > `after` that match `topics`, the last seq looked at).

    At most `limit` events, except that the events of the last returned
    index all come along, so that resuming by index loses none.
    """
    events = state.table(EVENTS)
    out: list[Event] = []
    last_index = None
    scanned = max(after, first_seq(state) - 1)
    for s in range(scanned + 1, last_seq(state) + 1):
        ev = events.get(s)
        if ev is None:  # never, unless a snapshot was tampered with
            scanned = s
            continue
        if len(out) >= limit and ev["index"] != last_index:
            break
        scanned = s
        if matches(ev["type"], topics):
            out.append(ev)
            last_index = ev["index"]
    return out, scanned
