"""`RaftNode`: this server's raft node and the thread that ticks it.

It owns a pysyncobj log (raft.pysyncobj_glue) and the thread that ticks it
(every pysyncobj call that is not thread-safe happens on that thread). It
exposes:
- `propose(entry, token)`: append a batch entry; completion is reported later,
- `read_index(token)`: ask for a read index (raft.read_index),
- `run_on_tick(fn)`: run a function on the tick thread (status, transfer),
- cheap read-only properties (leader, term, commit and applied index).

After every tick it hands the tick's completions to the `on_tick` callback
in one call, a write's acknowledgement only once the journal is on disk
(raft.completions, raft.journal); a follower answers the appends a poll
brought once they are flushed. A leader hands them over as soon as it applied
them (same rule: flushed first), before it sends the new commit index to its
followers.

A `RaftFatal` raised on the tick thread (a journal that cannot be written or
flushed, a log that diverged: raft.fatal) ends the ticking at once and goes
to `on_fatal`, which by default exits the process with the error's code.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from raft.completions import (
    DENIED,
    DISCARDED,
    NO_LEADER,
    NOT_LEADER,
    OK,
    QUEUE_FULL,
    UNKNOWN,
    Completion,
    Completions,
)
from raft.config import RaftConfig
from raft.fatal import JournalFailed, RaftFatal, exit_process
from raft.journal import Journal
from raft.pysyncobj_glue import Peers, ReplicatedLog, reason, sync_conf
from raft.read_index import ReadIndex
from raft.state import State

__all__ = [
    "DENIED",
    "DISCARDED",
    "NOT_LEADER",
    "NO_LEADER",
    "OK",
    "QUEUE_FULL",
    "UNKNOWN",
    "Completion",
    "RaftConfig",
    "RaftNode",
]

log = logging.getLogger("heroctld.raft")

BUSY_TICK = 0.2  # seconds: a tick longer than this was spent busy, not listening
LONELY_CHECK = 5.0  # seconds between checks that some peer answers
LONELY_WARNING = 10.0  # seconds without any peer before saying so


class RaftNode:
    def __init__(
        self,
        config: RaftConfig,
        state: State,
        on_tick: Callable[[list[Completion], int], None],
        on_fatal: Callable[[RaftFatal], None] = exit_process,
    ) -> None:
        self.config = config
        self.state = state
        self._on_tick = on_tick
        self._on_fatal = on_fatal
        self.failed: RaftFatal | None = None
        self._tasks: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = (
            queue.Queue()
        )
        self._read_requests: collections.deque[Any] = collections.deque()  # tokens
        # Made on the tick thread when it starts:
        self._sync: ReplicatedLog | None = None
        self._reads: ReadIndex
        self._journal: Journal
        self._completions: Completions
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._wait = config.tick_wait
        self._last_tick = time.monotonic()
        self._tick_mark = -1
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

    def _state_changed(self, old: int, new: int) -> None:
        names = {0: "follower", 1: "candidate", 2: "leader"}
        log.info("raft: %s -> %s (term %d)", names.get(old, old), names.get(new, new), self.term)

    def _open(self) -> ReplicatedLog:
        """Tick thread: pysyncobj's log (it replays the journal) and what we hook into it."""
        conf = sync_conf(
            self.config,
            self.state,
            self.journal_path,
            self.snapshot_path,
            self._state_changed,
            self._snapshot_failed,
        )
        sync = ReplicatedLog(self.config, self.state, conf)
        self._journal = Journal(self.journal_path, self.config.flush_journal)
        sync.use_journal(self._journal)
        self._reads = ReadIndex(
            Peers(sync),
            self._completion_of_read,
            ok=OK,
            not_leader=NOT_LEADER,
            no_leader=NO_LEADER,
            retry=DISCARDED,
        )
        sync.route_messages(self._on_message)
        self._completions = Completions(self._journal, self._on_tick)
        # Our per-tick work runs inside pysyncobj's tick, after it applied and
        # right before it polls: completions reach asyncio without waiting out
        # the poll (on a quiet follower nothing else would end it).
        sync.addOnTickCallback(self._after_tick)
        # A leader applies, then sends the new commit index to its followers:
        # hand the completions over first, so a reply does not wait for those
        # sends (≈0.2 ms of every sequential write).
        sync.before_sending_entries(self._deliver_if_any)
        return sync

    def _run(self) -> None:
        try:
            self._sync = sync = self._open()
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            if isinstance(exc, RaftFatal):
                self._fail(exc)
            return
        self._started.set()
        lonely_since = time.monotonic()
        next_check = lonely_since + LONELY_CHECK
        while not self._stopping.is_set():
            try:
                sync.doTick(self._wait)
                self._answer_appends()
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + LONELY_CHECK
                    lonely_since = self._warn_if_lonely(lonely_since, now)
            except RaftFatal as exc:
                self._fail(exc)
                return
            except Exception:
                log.exception("raft tick failed")
                time.sleep(self.config.tick_wait)
        try:
            self._journal.close()
            sync.destroy()
        except Exception:
            log.exception("raft shutdown")

    def _snapshot_failed(self, error: Exception) -> None:
        """Tick thread: a snapshot did not load; the next delivery stops the server
        (with the snapshot's own reason when it is fatal: a newer format)."""
        self._journal.fail(
            error
            if isinstance(error, RaftFatal)
            else JournalFailed(f"raft: cannot load the snapshot {self.snapshot_path}: {error}")
        )

    def _fail(self, error: RaftFatal) -> None:
        """Tick thread: stop for good; nothing more is ticked, sent or acknowledged."""
        self.failed = error
        log.critical("%s [exit code %d]", error, error.exit_code)
        self._on_fatal(error)

    def _on_message(self, node: Any, message: Any) -> bool:
        """Tick thread, every message from a peer: True if it was ours (a read index)."""
        self.last_contact[node.id] = time.monotonic()
        return isinstance(message, dict) and self._reads.on_message(node, message)

    def _after_tick(self) -> None:
        """Tick thread, once per tick: tasks, read indexes, then completions."""
        sync = self._sync
        assert sync is not None
        now = time.monotonic()
        if now - self._last_tick > BUSY_TICK and not sync.is_leader():
            # A long tick (replaying the journal after a restart, loading a
            # snapshot) is time we did not listen: it must not count toward
            # the election timeout, or a caught-up follower would depose a
            # healthy leader the moment it finishes (pysyncobj has no PreVote).
            sync.postpone_election(now + self.config.election_timeout_min)
        self._last_tick = now
        self._drain_tasks()
        while self._read_requests:
            self._reads.request(self._read_requests.popleft())
        self._reads.tick()
        mark = self._journal.mark()
        # Tick again at once while the log moves (nothing may wake the poll).
        moved = mark != self._tick_mark or sync.raftLastApplied < sync.raftCommitIndex
        self._tick_mark = mark
        self._wait = 0.0 if moved else self.config.tick_wait
        self._deliver()

    def _deliver(self) -> None:
        sync = self._sync
        assert sync is not None
        self._journal.check()  # a failure pysyncobj swallowed (around a snapshot load)
        self._completions.deliver(sync.is_leader(), sync.raftLastApplied)

    def _answer_appends(self) -> None:
        """After the tick's poll: a follower answers the appends it received
        once they are flushed, all of them after one flush, before it applies
        anything (the leader's commit waits for these answers)."""
        sync = self._sync
        assert sync is not None
        if sync.holds_acks():
            self._journal.check()
            mark = self._journal.mark()
            if not self._journal.flushed(mark):
                self._journal.flush(mark)
            sync.release_acks()

    def _deliver_if_any(self) -> None:
        if self._completions:
            self._deliver()

    def _warn_if_lonely(self, lonely_since: float, now: float) -> float:
        """Log when no peer has answered for a while: the operator's first clue."""
        assert self._sync is not None
        partners = list(self._sync.otherNodes)
        if not partners or any(self._sync.isNodeConnected(n) for n in partners):
            return now
        if now - lonely_since >= LONELY_WARNING:
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
        if self._sync is not None:
            self._sync.wake()

    def _completion(self, token: Any) -> Callable[[Any, int], None]:
        def done(result: Any, err: int) -> None:  # runs on the tick thread
            self._completions.write_done(token, result, reason(err))

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

    def _completion_of_read(self, token: Any, index: int | None, why: str) -> None:
        self._completions.read_done(token, index, why)  # tick thread

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
        self._sync.transferLeadership(target, callback=lambda _r, err: box.append(reason(err)))
        return box[0] if box else DENIED

    def members(self) -> list[str]:
        assert self._sync is not None
        others = [n.id for n in self._sync.otherNodes]
        return sorted([self.config.self_address, *others])

    def peer_view(self) -> dict[str, Any]:
        """Membership, connectivity and replication progress (tick thread)."""
        assert self._sync is not None
        now = time.monotonic()
        progress, log_len = self._sync.peer_progress()
        peers = []
        for addr in self.members():
            if addr == self.config.self_address:
                peers.append({"raft_address": addr, "connected": True, "last_contact_ms": 0})
                continue
            seen = self.last_contact.get(addr)
            connected, match_index = progress.get(addr, (False, None))
            peers.append(
                {
                    "raft_address": addr,
                    "connected": connected,
                    "last_contact_ms": None if seen is None else int((now - seen) * 1000),
                    "match_index": match_index,
                }
            )
        return {"peers": peers, "log_len": log_len}

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
        node = self._sync.leader_node() if self._sync else None
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
        return sync is not None and not sync.has_other_voters()

    @property
    def is_leader(self) -> bool:
        return bool(self._sync and self._sync.is_leader())

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
        node = self._sync.leader_node() if self._sync else None
        if node is None:
            return None
        if node.id == self.config.self_address:
            return 0.0
        seen = self.last_contact.get(node.id)
        return None if seen is None else time.monotonic() - seen
