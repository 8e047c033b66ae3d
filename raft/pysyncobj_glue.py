"""pysyncobj's configuration and our replicated log: what we change or reach in pysyncobj.

pysyncobj runs raft for us (log, elections, replication, snapshots, the
journal). raft.node drives it from one thread through `ReplicatedLog`. Only
the raft/pysyncobj_*.py modules import pysyncobj or touch its private parts
(this one; `_transport`: the raft port's connections; `_journal`: the journal
file; `_follower`: the append rule and acknowledgements). What we change or reach:

- its transport encrypts every message with raft.transport_cipher (instead of
  Fernet), and refuses frames above a limit before buffering them
  (raft.pysyncobj_transport);
- messages of our own (raft.read_index) are taken before pysyncobj sees them,
  and a snapshot chunk may not raise the commit index;
- a follower keeps the entries a leader re-sends instead of truncating them,
  stops (`LogDiverged`) rather than replace an applied entry, and answers an
  append only after the journal flush (raft.pysyncobj_follower);
- the journal reserves its space, counts its writes and persists the term and
  vote durably (raft.pysyncobj_journal);
- a leader can hand its completions over before it sends the new commit index
  to its followers (`before_sending_entries`);
- a tick spent busy can push the election deadline back (`postpone_election`);
- the journal, the no-op index of the leader's term, the pipe that ends a
  tick's poll.

pysyncobj's outcomes become raft.completions' reasons here too.
"""

from __future__ import annotations

import base64
import functools
import logging
from collections.abc import Callable
from typing import Any

import pysyncobj.syncobj as _syncobj_module
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated
from pysyncobj.node import TCPNode

from raft.commands import decode_batch
from raft.completions import DENIED, DISCARDED, NO_LEADER, NOT_LEADER, OK, QUEUE_FULL, UNKNOWN
from raft.config import RaftConfig, append_batch_bytes
from raft.fatal import LogDiverged, RaftFatal
from raft.fsm import apply_batch
from raft.journal import Journal
from raft.pysyncobj_follower import DIVERGED, Entry, HeldAcks, match_append
from raft.pysyncobj_journal import hook_journal
from raft.pysyncobj_transport import GuardedTransport
from raft.snapshot_file import read_snapshot, write_snapshot
from raft.state import State
from raft.transport_cipher import TransportCipher

log = logging.getLogger("heroctld.raft")

_syncobj_module.getEncryptor = TransportCipher  # every peer message, both ways

_REASONS = {
    FAIL_REASON.SUCCESS: OK,
    FAIL_REASON.QUEUE_FULL: QUEUE_FULL,
    FAIL_REASON.MISSING_LEADER: NO_LEADER,
    FAIL_REASON.DISCARDED: DISCARDED,
    FAIL_REASON.NOT_LEADER: NOT_LEADER,
    FAIL_REASON.LEADER_CHANGED: DISCARDED,
    FAIL_REASON.REQUEST_DENIED: DENIED,
}
if hasattr(FAIL_REASON, "UNKNOWN_OUTCOME"):
    _REASONS[FAIL_REASON.UNKNOWN_OUTCOME] = UNKNOWN


def reason(err: int) -> str:
    """pysyncobj's outcome of a call as one of raft.completions' reasons."""
    return _REASONS.get(err, str(err))


def sync_conf(
    config: RaftConfig,
    state: State,
    journal_path: str,
    snapshot_path: str,
    on_state_changed: Callable[[int, int], None],
    on_load_error: Callable[[Exception], None],
) -> SyncObjConf:
    """pysyncobj's configuration. `on_load_error` hears of a snapshot that
    could not be loaded: pysyncobj logs it and goes on (and acknowledges a
    snapshot it received but could not load)."""
    c = config

    def serialize(path: str, raft_data: tuple[Any, Any, Any]) -> None:
        last, prev, cluster = raft_data
        write_snapshot(path, state, last, prev, [n.id for n in cluster])

    def deserialize(path: str) -> tuple[Any, Any, Any]:
        try:
            last, prev, cluster = read_snapshot(path, state)
        except Exception as e:
            on_load_error(e)
            raise
        return last, prev, [TCPNode(a) for a in cluster]

    return SyncObjConf(
        password=base64.urlsafe_b64encode(c.raft_key),
        autoTick=False,
        journalFile=journal_path,
        fullDumpFile=snapshot_path,
        serializer=serialize,
        deserializer=deserialize,
        dynamicMembershipChange=True,
        appendEntriesUseBatch=False,
        commandsWaitLeader=False,
        raftMinTimeout=c.election_timeout_min,
        raftMaxTimeout=c.election_timeout_max,
        leaderFallbackTimeout=c.leader_fallback_timeout,
        appendEntriesBatchSizeBytes=append_batch_bytes(c.max_frame),
        sendBufferSize=2**20,
        recvBufferSize=2**20,
        connectionRetryTime=1.0,
        connectionTimeout=3.0,
        logCompactionSplit=True,
        logCompactionMinEntries=c.compaction_min_entries,
        logCompactionMinTime=c.compaction_min_time,
        onStateChanged=on_state_changed,
        **c.extra,
    )


class ReplicatedLog(SyncObj):
    """pysyncobj's SyncObj applying raft entries (batches of commands) to the
    FSM. Not thread-safe: made and used on the tick thread only, except where
    raft.node says otherwise."""

    def __init__(self, config: RaftConfig, state: State, conf: SyncObjConf) -> None:
        self._state = state
        others = [p for p in config.partners if p != config.self_address]
        transport = functools.partial(GuardedTransport, max_frame=config.max_frame)
        super().__init__(config.self_address, others, conf, transportClass=transport)
        self._acks = HeldAcks(self.entry_at, self.last_index, self.send)
        self._SyncObj__sendNextNodeIdx = self._acks.hold  # type: ignore[attr-defined]
        self._delete_from = self._SyncObj__deleteEntriesFrom  # type: ignore[attr-defined]
        self._SyncObj__deleteEntriesFrom = self._delete_unapplied_from  # type: ignore[attr-defined]

    def _delete_unapplied_from(self, index: int) -> None:
        """pysyncobj's truncation, refused for applied entries (match_append
        lets none through: this is the last line, for paths it does not see)."""
        if index <= self.raftLastApplied:
            raise LogDiverged(
                f"raft: the leader's entries would replace applied entries from index "
                f"{index} (applied: {self.raftLastApplied}){DIVERGED}"
            )
        self._delete_from(index)

    @replicated
    def apply_entry(self, entry: bytes) -> Any:
        # Total by construction: apply_batch never raises, and this guard
        # catches anything around it (notes/pysyncobj.md #1), except what says
        # this server must stop rather than apply it (raft.fatal: an entry of
        # a newer format): it leaves the tick and raft.node stops the server
        # before pysyncobj counts the entry as applied.
        try:
            index = self.raftLastApplied + 1
            return apply_batch(self._state, decode_batch(entry), index)
        except RaftFatal:
            raise
        except BaseException:
            log.exception("apply failed")
            return []

    # --- state pysyncobj keeps private ------------------------------------
    def is_leader(self) -> bool:
        return bool(self._isLeader())

    def leader_node(self) -> Any | None:
        """The leader as pysyncobj knows it (a node with an `id`), if any."""
        return self._getLeader()

    def has_other_voters(self) -> bool:
        return bool(len(self._SyncObj__otherNodes))  # type: ignore[attr-defined]

    def committed_in_term(self) -> bool:
        """Whether the leader committed the no-op of its term."""
        noop = self._SyncObj__noopIDx  # type: ignore[attr-defined]
        return noop is not None and self.raftCommitIndex >= noop

    def entry_at(self, index: int) -> Entry | None:
        """The log's entry at raft index `index`, if the log holds it."""
        log = self._SyncObj__raftLog  # type: ignore[attr-defined]
        pos = index - log[0][1]
        return log[pos] if 0 <= pos < len(log) else None

    def last_index(self) -> int:
        return int(self._SyncObj__raftLog[-1][1])  # type: ignore[attr-defined]

    def use_journal(self, journal: Journal) -> None:
        """pysyncobj's journal file reserves its space and reports its writes to
        `journal`, and stores the term and vote durably (raft.pysyncobj_journal)."""
        hook_journal(self._SyncObj__raftLog, journal)  # type: ignore[attr-defined]

    def holds_acks(self) -> bool:
        return bool(self._acks)

    def release_acks(self) -> None:
        """The journal is flushed: answer the appends received."""
        self._acks.release()

    def peer_progress(self) -> tuple[dict[str, tuple[bool, Any]], Any]:
        """({raft address: (connected, match index)} of the other members, the log's length)."""
        status = self.getStatus()
        peers = {
            n.id: (
                bool(status.get(f"partner_node_status_server_{n.id}")),
                status.get(f"match_idx_server_{n.id}"),
            )
            for n in self.otherNodes
        }
        return peers, status.get("log_len")

    # --- what we change in pysyncobj ----------------------------------------
    def route_messages(self, ours: Callable[[Any, Any], bool]) -> None:
        """Every message from a peer goes to `ours` first; it returns True for
        the ones it took (pysyncobj never sees those)."""
        original = self._SyncObj__onMessageReceived  # type: ignore[attr-defined]

        def on_message(node: Any, message: Any) -> None:
            if ours(node, message):
                return
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "append_entries":
                self._on_append(original, node, message)
            elif kind == "next_node_idx" and message.get("success") and not message.get("reset"):
                self._on_acknowledged(original, node, message)
            else:
                original(node, message)

        self._SyncObj__transport.setOnMessageReceivedCallback(on_message)  # type: ignore[attr-defined]

    def _on_append(self, handle: Callable[[Any, Any], None], node: Any, message: Any) -> None:
        if "prevLogIdx" in message:
            log = self._SyncObj__raftLog  # type: ignore[attr-defined]
            message, self._acks.cap = match_append(
                message, self.entry_at, log[-1], self.raftLastApplied
            )
            try:
                handle(node, message)
            finally:
                self._acks.cap = None
            return
        # pysyncobj 0.3.17 lets a snapshot chunk raise the commit index over
        # this node's own, unverified log: a deposed leader then applies and
        # acknowledges an entry the cluster never committed. A snapshot chunk
        # must not commit anything.
        commit = min(message.get("commit_index", 0), self.raftCommitIndex)
        handle(node, {**message, "commit_index": commit})

    def _on_acknowledged(self, handle: Callable[[Any, Any], None], node: Any, message: Any) -> None:
        """Leader: an acknowledgement raises the follower's match index and
        leaves its next index where the sends already are. pysyncobj moves the
        next index back to the acknowledged one, so every acknowledgement of an
        append made the next send repeat the appends in flight (and a follower
        acknowledges only once per flush: docs/performance.md #11)."""
        next_index = self._SyncObj__raftNextIndex  # type: ignore[attr-defined]
        sent = next_index.get(node)
        handle(node, message)
        if sent is not None and next_index.get(node, sent) < sent:
            next_index[node] = sent

    def before_sending_entries(self, first: Callable[[], None]) -> None:
        """Run `first` each time a leader is about to send entries (and its
        commit index) to its followers."""
        send_entries = self._SyncObj__sendAppendEntries  # type: ignore[attr-defined]

        def first_then_send() -> None:
            first()
            send_entries()

        self._SyncObj__sendAppendEntries = first_then_send  # type: ignore[attr-defined]

    def postpone_election(self, deadline: float) -> None:
        """Start no election before `deadline` (time.monotonic)."""
        if self._SyncObj__raftElectionDeadline < deadline:  # type: ignore[attr-defined]
            self._SyncObj__raftElectionDeadline = deadline  # type: ignore[attr-defined]

    def wake(self) -> None:
        """End the tick's idle poll now (any thread)."""
        notifier = getattr(self, "_SyncObj__pipeNotifier", None)
        if notifier is not None:
            notifier.notify()

    def send(self, node: Any, message: dict[str, Any]) -> bool:
        """Send a message of our own to a peer over pysyncobj's transport."""
        return bool(self._SyncObj__transport.send(node, message))  # type: ignore[attr-defined]


class Peers:
    """What raft.read_index needs from pysyncobj (tick thread only)."""

    def __init__(self, sync: ReplicatedLog) -> None:
        self._sync = sync

    def is_leader(self) -> bool:
        return self._sync.is_leader()

    def term(self) -> int:
        return int(self._sync.raftCurrentTerm)

    def commit_index(self) -> int:
        return int(self._sync.raftCommitIndex)

    def committed_in_term(self) -> bool:
        return self._sync.committed_in_term()

    def leader(self) -> Any | None:
        return self._sync.leader_node()

    def voters(self) -> list[Any]:
        return list(self._sync.otherNodes)

    def send(self, node: Any, message: dict[str, Any]) -> bool:
        return self._sync.send(node, message)
