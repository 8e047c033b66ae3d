"""Real raft nodes (raft.node.RaftNode over pysyncobj and its TCP transport) in
this process, on 127.0.0.1, for tests of the raft layer below the bridge.

Each node records its completions and, instead of exiting the process, the
fatal error that stops it. Some tests play a pysyncobj leader doing what it
does on its own (re-sending entries after an acknowledgement): those reach
into pysyncobj's private attributes here, in one place.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from raft.commands import encode_batch, encode_command, new_command
from raft.completions import OK
from raft.config import RaftConfig
from raft.fatal import RaftFatal
from raft.node import RaftNode
from raft.state import State
from tests.support.cluster import free_port

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Node:
    """A RaftNode and what it reported."""

    def __init__(self, root: Path, address: str, partners: list[str], key: bytes) -> None:
        self.address = address
        self.state = State()
        self.done: dict[Any, str] = {}  # token -> reason
        self.fatal: list[RaftFatal] = []
        self._lock = threading.Lock()
        config = RaftConfig(
            self_address=address,
            partners=partners,
            data_dir=str(root / address.replace(":", "_")),
            raft_key=key,
            extra={"bindAddress": address},
        )
        self.raft = RaftNode(config, self.state, self._on_tick, self.fatal.append)

    def _on_tick(self, completions: list[Any], applied: int) -> None:
        with self._lock:
            for token, _result, reason in completions:
                self.done[token] = reason

    def on_tick(self, fn: Callable[[Any], T], timeout: float = 5.0) -> T:
        """`fn(pysyncobj's ReplicatedLog)` on the node's tick thread."""
        return self.raft.run_on_tick(lambda: fn(self.raft._sync)).result(timeout)

    def propose(self, token: Any) -> None:
        entry = encode_batch([encode_command(new_command("noop"))])
        self.raft.propose(entry, token)

    def entries(self) -> list[Any]:
        """The log as (command, index, term) tuples, read on the tick thread
        (directly once the node has stopped)."""

        def read(sync: Any) -> list[Any]:
            log = sync._SyncObj__raftLog
            return [log[i] for i in range(len(log))]

        return read(self.raft._sync) if self.fatal else self.on_tick(read)


class Cluster:
    """`size` nodes, started; the leader found."""

    def __init__(self, root: Path, size: int, env: dict[int, dict[str, str]] | None = None):
        """`env`: environment variables for the node at a position, while it starts."""
        key = os.urandom(32)
        addresses = [f"127.0.0.1:{free_port()}" for _ in range(size)]
        self.nodes = [Node(root, a, addresses, key) for a in addresses]
        for position, node in enumerate(self.nodes):
            extra = (env or {}).get(position, {})
            saved = {k: os.environ.get(k) for k in extra}
            os.environ.update(extra)
            try:
                node.raft.start()  # the journal reads the environment here
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v

    def leader(self, timeout: float = 10.0) -> Node:
        return wait_for(
            lambda: next((n for n in self.nodes if n.raft.is_leader and not n.fatal), None),
            timeout,
            "a leader",
        )

    def write(self, count: int, prefix: str = "w") -> list[str]:
        """`count` writes on the leader, each acknowledged."""
        leader = self.leader()
        tokens = [f"{prefix}{i}" for i in range(count)]
        for token in tokens:
            leader.propose(token)
        wait_for(lambda: all(leader.done.get(t) == OK for t in tokens), 10, "acknowledgements")
        return tokens

    def stop(self) -> None:
        for node in self.nodes:
            node.raft.stop()


def resend_from(leader: Node, follower: Node, index: int) -> None:
    """Make the leader send `follower` its entries again from `index`, as
    pysyncobj does whenever an acknowledgement arrives after later sends."""

    def rewind(sync: Any) -> None:
        nodes = {n.id: n for n in sync.otherNodes}
        sync._SyncObj__raftNextIndex[nodes[follower.address]] = index

    leader.on_tick(rewind)


def replace_entry(node: Node, index: int, command: bytes | None = None, term: int | None = None):
    """Change the entry at `index` in `node`'s log (in memory only)."""

    def change(sync: Any) -> None:
        entries = sync._SyncObj__raftLog._FileJournal__journal
        pos = index - entries[0][1]
        old_command, idx, old_term = entries[pos]
        entries[pos] = (command or old_command, idx, old_term if term is None else term)

    node.on_tick(change)
