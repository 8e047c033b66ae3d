"""The one module that imports pysyncobj.

`RaftNode` owns a pysyncobj `SyncObj` and the thread that ticks it (every
pysyncobj call that is not thread-safe happens on that thread). It exposes:
- `propose(entry, token)`: append a batch entry; completion is reported later,
- `run_on_tick(fn)`: run a function on the tick thread (status, transfer),
- cheap read-only properties (leader, term, commit and applied index).

After every tick it flushes the journal if it grew (pysyncobj never does,
notes/pysyncobj.md #5) and only then hands the tick's completions to the
`on_tick` callback in one call, so acknowledged writes are on disk and the
asyncio side is woken once per tick, not once per request. A leader hands
them over as soon as it applied them (same rule: flushed first), before it
sends the new commit index to its followers.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import pysyncobj.syncobj as _syncobj_module
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated
from pysyncobj.node import TCPNode

from raft.commands import decode_batch
from raft.fsm import apply_batch
from raft.read_index import ReadIndex
from raft.state import State, pack_snapshot, unpack_snapshot
from raft.transport_cipher import TransportCipher

log = logging.getLogger("heroctld.raft")

# Completion reasons, independent of pysyncobj's numbering.
OK = "ok"
NOT_LEADER = "not_leader"
NO_LEADER = "no_leader"
DISCARDED = "discarded"
DENIED = "denied"
QUEUE_FULL = "queue_full"
UNKNOWN = "unknown_outcome"  # retried with the same request id, so it applies once
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

Completion = tuple[Any, Any, str]
BUSY_TICK = (
    0.2  # seconds: a tick longer than this was spent busy, not listening  # (token, result, reason)
)


_syncobj_module.getEncryptor = TransportCipher  # every peer message, both ways


class _Peers:
    """What raft.read_index needs from pysyncobj (tick thread only)."""

    def __init__(self, sync: SyncObj, transport: Any) -> None:
        self._sync = sync
        self._transport = transport

    def is_leader(self) -> bool:
        return bool(self._sync._isLeader())

    def term(self) -> int:
        return int(self._sync.raftCurrentTerm)

    def commit_index(self) -> int:
        return int(self._sync.raftCommitIndex)

    def committed_in_term(self) -> bool:
        noop = self._sync._SyncObj__noopIDx  # type: ignore[attr-defined]
        return noop is not None and self._sync.raftCommitIndex >= noop

    def leader(self) -> Any | None:
        return self._sync._getLeader()

    def voters(self) -> list[Any]:
        return list(self._sync.otherNodes)

    def send(self, node: Any, message: dict[str, Any]) -> bool:
        return bool(self._transport.send(node, message))


@dataclass
class RaftConfig:
    self_address: str
    partners: list[str]
    data_dir: str
    raft_key: bytes  # 32 bytes, derived from the cluster key
    election_timeout_min: float = 0.4
    election_timeout_max: float = 1.4
    leader_fallback_timeout: float = 2.0
    tick_wait: float = 0.05  # idle poll; work wakes it (sockets, new commands)
    compaction_min_entries: int = 5000
    compaction_min_time: float = 300.0
    flush_journal: bool = True  # False only to measure what durability costs
    extra: dict[str, Any] = field(default_factory=dict)


class _SyncObj(SyncObj):
    def __init__(self, owner: RaftNode, conf: SyncObjConf) -> None:
        self._owner = owner
        cfg = owner.config
        super().__init__(cfg.self_address, [p for p in cfg.partners if p != cfg.self_address], conf)

    @replicated
    def apply_entry(self, entry: bytes) -> Any:
        # Total by construction: apply_batch never raises, and this guard
        # catches anything around it (notes/pysyncobj.md #1).
        try:
            index = self.raftLastApplied + 1
            return apply_batch(self._owner.state, decode_batch(entry), index)
        except BaseException:
            log.exception("apply failed")
            return []


class RaftNode:
    def __init__(
        self,
        config: RaftConfig,
        state: State,
        on_tick: Callable[[list[Completion], int], None],
    ) -> None:
        self.config = config
        self.state = state
        self._on_tick = on_tick
        self._tasks: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = (
            queue.Queue()
        )
        self._completed: list[Completion] = []
        self._acks_write = False  # a completion in _completed acknowledges a write
        self._read_requests: collections.deque[Any] = collections.deque()  # tokens
        self._reads: ReadIndex
        self._sync: _SyncObj | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._wait = config.tick_wait
        self._last_tick = time.monotonic()
        self._flushed_at = -1
        self._tick_mark = -1
        self._journal: Any = None
        self._journal_fd = -1
        self._start_error: BaseException | None = None
        self.last_contact: dict[str, float] = {}
        os.makedirs(config.data_dir, exist_ok=True)
        self.journal_path = os.path.join(config.data_dir, "raft.journal")
        self.snapshot_path = os.path.join(config.data_dir, "raft.snapshot")

    # --- lifecycle -------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="raft-tick", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            raise self._start_error

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _conf(self) -> SyncObjConf:
        c = self.config
        return SyncObjConf(
            password=base64.urlsafe_b64encode(c.raft_key),
            autoTick=False,
            journalFile=self.journal_path,
            fullDumpFile=self.snapshot_path,
            serializer=self._write_snapshot,
            deserializer=self._read_snapshot,
            dynamicMembershipChange=True,
            appendEntriesUseBatch=False,
            commandsWaitLeader=False,
            raftMinTimeout=c.election_timeout_min,
            raftMaxTimeout=c.election_timeout_max,
            leaderFallbackTimeout=c.leader_fallback_timeout,
            appendEntriesBatchSizeBytes=4 * 1024 * 1024,
            sendBufferSize=2**20,
            recvBufferSize=2**20,
            connectionRetryTime=1.0,
            connectionTimeout=3.0,
            logCompactionSplit=True,
            logCompactionMinEntries=c.compaction_min_entries,
            logCompactionMinTime=c.compaction_min_time,
            onStateChanged=self._state_changed,
            **c.extra,
        )

    def _state_changed(self, old: int, new: int) -> None:
        names = {0: "follower", 1: "candidate", 2: "leader"}
        log.info("raft: %s -> %s (term %d)", names.get(old, old), names.get(new, new), self.term)

    def _run(self) -> None:
        try:
            self._sync = _SyncObj(self, self._conf())
            transport = self._sync._SyncObj__transport  # type: ignore[attr-defined]
            self._reads = ReadIndex(
                _Peers(self._sync, transport),
                self._read_answered,
                ok=OK,
                not_leader=NOT_LEADER,
                no_leader=NO_LEADER,
                retry=DISCARDED,
            )
            original = self._sync._SyncObj__onMessageReceived  # type: ignore[attr-defined]

            sync = self._sync

            def on_message(node: Any, message: Any) -> None:
                self.last_contact[node.id] = time.monotonic()
                if isinstance(message, dict) and self._reads.on_message(node, message):
                    return  # ReadIndex: ours, not pysyncobj's
                if (
                    isinstance(message, dict)
                    and message.get("type") == "append_entries"
                    and "prevLogIdx" not in message
                ):
                    # pysyncobj 0.3.17 lets a snapshot chunk raise the commit index
                    # over this node's own, unverified log: a deposed leader then
                    # applies and acknowledges an entry the cluster never committed.
                    # A snapshot chunk must not commit anything.
                    message = {
                        **message,
                        "commit_index": min(message.get("commit_index", 0), sync.raftCommitIndex),
                    }
                original(node, message)

            transport.setOnMessageReceivedCallback(on_message)
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        sync = self._sync
        self._journal = sync._SyncObj__raftLog  # type: ignore[attr-defined]
        self._journal_fd = os.open(self.journal_path, os.O_RDWR)
        # Our per-tick work runs inside pysyncobj's tick, after it applied and
        # right before it polls: completions reach asyncio without waiting out
        # the poll (on a quiet follower nothing else would end it).
        sync.addOnTickCallback(self._after_tick)
        # A leader applies, then sends the new commit index to its followers:
        # hand the completions over first, so a reply does not wait for those
        # sends (≈0.2 ms of every sequential write).
        send_entries = sync._SyncObj__sendAppendEntries  # type: ignore[attr-defined]

        def deliver_then_send_entries() -> None:
            if self._completed:
                self._deliver()
            send_entries()

        sync._SyncObj__sendAppendEntries = deliver_then_send_entries  # type: ignore[attr-defined]
        lonely_since = time.monotonic()
        next_check = lonely_since + 5.0
        while not self._stopping.is_set():
            try:
                sync.doTick(self._wait)
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + 5.0
                    lonely_since = self._warn_if_lonely(lonely_since, now)
            except Exception:
                log.exception("raft tick failed")
                time.sleep(self.config.tick_wait)
        try:
            self._flush_journal()
            os.close(self._journal_fd)
            sync._doDestroy()  # type: ignore[attr-defined]
        except Exception:
            log.exception("raft shutdown")

    def _after_tick(self) -> None:
        """Tick thread, once per tick: tasks, journal flush, then completions."""
        sync = self._sync
        assert sync is not None
        now = time.monotonic()
        if now - self._last_tick > BUSY_TICK and not sync._isLeader():
            # A long tick (replaying the journal after a restart, loading a
            # snapshot) is time we did not listen: it must not count toward
            # the election timeout, or a caught-up follower would depose a
            # healthy leader the moment it finishes (pysyncobj has no PreVote).
            deadline = now + self.config.election_timeout_min
            if sync._SyncObj__raftElectionDeadline < deadline:  # type: ignore[attr-defined]
                sync._SyncObj__raftElectionDeadline = deadline  # type: ignore[attr-defined]
        self._last_tick = now
        self._drain_tasks()
        while self._read_requests:
            self._reads.request(self._read_requests.popleft())
        self._reads.tick()
        mark = len(self._journal)
        # Tick again at once while the log moves (nothing may wake the poll).
        moved = mark != self._tick_mark or sync.raftLastApplied < sync.raftCommitIndex
        self._tick_mark = mark
        self._wait = 0.0 if moved else self.config.tick_wait
        self._deliver()

    def _deliver(self) -> None:
        """Completions to the bridge, never an acknowledged write before the
        journal is on disk.

        A follower's completions that acknowledge no write (read indexes) go
        first and the flush after: what a follower applied, the leader flushed
        before it sent the commit index, so such a read shows nothing less
        durable than a write's acknowledgement.
        """
        sync = self._sync
        assert sync is not None
        # Only a grown (or compacted) log needs flushing: the commit index
        # pysyncobj keeps in the journal header can be recomputed after a crash.
        mark = len(self._journal)
        grew = mark != self._flushed_at
        done, self._completed = self._completed, []
        acks_write, self._acks_write = self._acks_write, False
        if grew and (acks_write or sync._isLeader()):
            self._flush(mark)
            grew = False
        self._on_tick(done, sync.raftLastApplied)
        if grew:
            self._flush(mark)

    def _flush(self, mark: int) -> None:
        if self.config.flush_journal:
            self._flush_journal()
        self._flushed_at = mark

    def _flush_journal(self) -> None:
        """Make the journal durable before anything of this tick is acknowledged.

        fdatasync on the file writes back the pages dirtied through pysyncobj's
        mmap, like msync, but releases the GIL while the disk works (CPython's
        mmap.flush holds it, freezing the API for the duration).
        """
        try:
            os.fdatasync(self._journal_fd)
        except OSError:
            self._journal.flush()

    def _warn_if_lonely(self, lonely_since: float, now: float) -> float:
        """Log when no peer has answered for a while: the operator's first clue."""
        assert self._sync is not None
        partners = list(self._sync.otherNodes)
        if not partners or any(self._sync.isNodeConnected(n) for n in partners):
            return now
        if now - lonely_since >= 10.0:
            log.warning(
                "raft: none of %d peers reachable for %ds (network, or a different cluster key)",
                len(partners),
                int(now - lonely_since),
            )
        return lonely_since

    def _drain_tasks(self) -> None:
        while True:
            try:
                fn, fut = self._tasks.get_nowait()
            except queue.Empty:
                return
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as exc:
                    fut.set_exception(exc)

    # --- calls from other threads ---------------------------------------
    def run_on_tick(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._tasks.put((fn, fut))
        self._wake_tick()
        return fut

    def _wake_tick(self) -> None:
        notifier = getattr(self._sync, "_SyncObj__pipeNotifier", None)
        if notifier is not None:
            notifier.notify()  # end the tick's idle poll now

    def _completion(self, token: Any) -> Callable[[Any, int], None]:
        def done(result: Any, err: int) -> None:  # runs on the tick thread
            self._acks_write = True
            self._completed.append((token, result, _REASONS.get(err, str(err))))

        return done

    def propose(self, entry: bytes, token: Any) -> None:
        """Thread-safe: pysyncobj queues it for the tick thread."""
        assert self._sync is not None
        self._sync.apply_entry(entry, callback=self._completion(token))

    def read_index(self, token: Any) -> None:
        """Thread-safe: ask for a read index (raft.read_index); the completion
        carries it as its result once the leader confirmed it."""
        self._read_requests.append(token)
        self._wake_tick()

    def _read_answered(self, token: Any, index: int | None, reason: str) -> None:
        self._completed.append((token, index, reason))  # tick thread; acknowledges no write

    def add_member(self, address: str, token: Any) -> None:
        assert self._sync is not None
        self._sync.addNodeToCluster(address, callback=self._completion(token))

    def remove_member(self, address: str, token: Any) -> None:
        assert self._sync is not None
        self._sync.removeNodeFromCluster(address, callback=self._completion(token))

    # --- tick-thread-only operations (use through run_on_tick) ------------
    def transfer_leadership(self, target: str | None) -> str:
        assert self._sync is not None
        box: list[str] = []
        self._sync.transferLeadership(
            target, callback=lambda _r, err: box.append(_REASONS.get(err, str(err)))
        )
        return box[0] if box else DENIED

    def members(self) -> list[str]:
        assert self._sync is not None
        others = [n.id for n in self._sync.otherNodes]
        return sorted([self.config.self_address, *others])

    def peer_view(self) -> dict[str, Any]:
        """Membership, connectivity and replication progress (tick thread)."""
        assert self._sync is not None
        s = self._sync
        now = time.monotonic()
        status = s.getStatus()
        peers = []
        for addr in self.members():
            if addr == self.config.self_address:
                peers.append({"raft_address": addr, "connected": True, "last_contact_ms": 0})
                continue
            seen = self.last_contact.get(addr)
            peers.append(
                {
                    "raft_address": addr,
                    "connected": bool(status.get(f"partner_node_status_server_{addr}")),
                    "last_contact_ms": None if seen is None else int((now - seen) * 1000),
                    "match_index": status.get(f"match_idx_server_{addr}"),
                }
            )
        return {"peers": peers, "log_len": status.get("log_len")}

    def force_compaction(self) -> None:
        assert self._sync is not None
        self._sync.forceLogCompaction()

    # --- cheap reads (atomic attribute reads, any thread) ----------------
    @property
    def leader(self) -> str | None:
        """The leader, if we heard from it recently.

        pysyncobj keeps a dead leader as "leader" on a follower that is
        connected to nobody (it never starts an election then), so a leader
        silent for longer than the fallback timeout counts as unknown.
        """
        node = self._sync._getLeader() if self._sync else None
        if node is None:
            return None
        if node.id != self.config.self_address:
            seen = self.last_contact.get(node.id)
            if seen is None or time.monotonic() - seen > self.config.leader_fallback_timeout:
                return None
        return node.id

    @property
    def sole_voter(self) -> bool:
        """True when this server is the whole cluster (no other member can lead)."""
        sync = self._sync
        return sync is not None and not len(sync._SyncObj__otherNodes)  # type: ignore[attr-defined]

    @property
    def is_leader(self) -> bool:
        return bool(self._sync and self._sync._isLeader())

    @property
    def term(self) -> int:
        return self._sync.raftCurrentTerm if self._sync else 0

    @property
    def commit_index(self) -> int:
        return self._sync.raftCommitIndex if self._sync else 0

    @property
    def applied_index(self) -> int:
        return self._sync.raftLastApplied if self._sync else 0

    def leader_contact_age(self) -> float | None:
        """Seconds since we last heard from the leader (0 on the leader)."""
        node = self._sync._getLeader() if self._sync else None
        if node is None:
            return None
        if node.id == self.config.self_address:
            return 0.0
        seen = self.last_contact.get(node.id)
        return None if seen is None else time.monotonic() - seen

    # --- snapshots (called by pysyncobj on the tick thread) --------------
    def _write_snapshot(self, path: str, raft_data: tuple[Any, Any, Any]) -> None:
        last, prev, cluster = raft_data
        doc = {
            "raft": {
                "last": list(last),
                "prev": list(prev),
                "cluster": sorted(n.id for n in cluster),
            },
            "state": pack_snapshot(self.state.capture()),
        }
        with open(path, "wb") as f:
            f.write(msgpack.packb(doc, use_bin_type=True))
            f.flush()
            os.fsync(f.fileno())
        log.info("raft: snapshot written at index %d", last[1])

    def _read_snapshot(self, path: str) -> tuple[Any, Any, Any]:
        with open(path, "rb") as f:
            doc = msgpack.unpackb(f.read(), raw=False, strict_map_key=False)
        self.state.load(unpack_snapshot(doc["state"]))
        r = doc["raft"]
        log.info("raft: snapshot loaded at index %d", r["last"][1])
        return (
            tuple(r["last"]),
            tuple(r["prev"]),
            [TCPNode(a) for a in r["cluster"]],
        )
