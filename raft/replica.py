"""`Replica`: the only way into the replicated state from outside raft/.

It bundles the tables, the raft node and the asyncio bridge, and offers the
few operations the API and the controllers need: write a command, typed reads
(`with replica.read() as view:`, see raft.views), wait for a consistent view
or a change, read status, snapshot, change membership, transfer leadership.
Nobody outside raft/ touches the node, the bridge or the tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from raft.backup import Backup, take_backup
from raft.bridge import RaftBridge
from raft.commands import new_command, new_request_id
from raft.errors import CommandError, CommandRejected, NoLeader, RaftRefused
from raft.fsm_restore import preparing
from raft.node import OK, RaftConfig, RaftNode
from raft.state import State
from raft.views import Reading, StateView

log = logging.getLogger("heroctld.replica")


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:  # not written yet (or unreadable: then "not written" too)
        return None


# A restore travels in parts of this size (raft.fsm_restore): each a command
# well below raft.commands.MAX_COMMAND_BYTES.
RESTORE_PART_BYTES = 2**20
RESTORE_DECODE_WAIT = 120.0  # seconds the commit waits for this server's decoding, at most

__all__ = [
    "Backup",
    "CommandError",
    "CommandRejected",
    "NoLeader",
    "RaftConfig",
    "RaftRefused",
    "Replica",
    "ServerIdentity",
    "StateView",
]


@dataclass(frozen=True)
class ServerIdentity:
    name: str
    raft_address: str
    api_address: str  # how other servers and clients reach this API: http://host:port


class Replica:
    def __init__(self, identity: ServerIdentity, state: State, node: RaftNode, bridge: RaftBridge):
        self.identity = identity
        self._state = state
        self._node = node
        self._bridge = bridge
        self._reading = Reading(state)
        self._membership_lock = asyncio.Lock()
        self._table_waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._table_seen: dict[str, int] = {}
        bridge.apply_listeners.append(self._on_applied)

    @classmethod
    def start(
        cls,
        identity: ServerIdentity,
        config: RaftConfig,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
    ) -> Replica:
        """Start this server's raft node (its tick thread) over empty tables
        (the journal and snapshot in `config.data_dir` fill them)."""
        state = State()
        bridge = RaftBridge(loop, timeout=timeout)
        node = RaftNode(config, state, bridge.on_tick)
        bridge.attach(node)
        node.start()
        return cls(identity, state, node, bridge)

    def close(self) -> None:
        """Shutting down: waiters (blocking queries, controllers) return at once."""
        self._bridge.close()

    async def stop(self) -> None:
        """Stop the raft node (after `close`): its thread ends, the journal is closed."""
        await asyncio.get_running_loop().run_in_executor(None, self._node.stop)

    @property
    def closing(self) -> bool:
        return self._bridge.closing

    # --- writes -------------------------------------------------------
    async def write(self, op: str, **fields: Any) -> dict[str, Any]:
        result = await self._bridge.propose(new_command(op, **fields))
        if not result.get("ok"):
            raise CommandRejected(result["status"], result["error"], result["message"])
        return result

    # --- reads ----------------------------------------------------------
    def read(self) -> Reading:
        """`with replica.read() as view:` typed reads of a consistent state
        (this server's, as applied: call `consistent()` first for a
        linearizable read)."""
        return self._reading

    async def consistent(self) -> int:
        """Returns once every write acknowledged before the call is applied here."""
        return await self._bridge.barrier()

    @property
    def index(self) -> int:
        return self._state.index

    def table_index(self, table: str) -> int:
        return self._state.table_index.get(table, 0)

    def take_changes(self) -> tuple[set[str], bool]:
        """(jobs changed since the last call, whether nodes changed): for the scheduler."""
        return self._state.take_changes()

    def snapshot_bytes(self) -> tuple[int, bytes]:
        """(index, the whole state packed as a raft snapshot): a backup."""
        with self._state.read() as s:
            return s.index, s.to_bytes()

    async def backup(self) -> Backup:
        """This server's state as a backup's body (raft.backup), packed and
        compressed off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, take_backup, self._state)

    async def restore(self, body: bytes, sha256: str, snapshot_format: int) -> dict[str, Any]:
        """Replace the replicated state with a backup's body, through the log:
        `state.restore` commands of RESTORE_PART_BYTES each, proposed in order,
        then `state.restore.commit` once this server has decoded the staged
        body (raft.fsm_restore); the commit's result (CommandRejected if
        refused). The caller has checked the body; the FSM checks its sha256
        again. An upload that fails half way drops its staged parts (best effort)."""
        restore_id = new_request_id()
        parts = max(1, -(-len(body) // RESTORE_PART_BYTES))
        fields = {"id": restore_id, "format": snapshot_format}
        staged = {"parts": parts, "size": len(body), "sha256": sha256}
        try:
            for part in range(parts):
                data = body[part * RESTORE_PART_BYTES : (part + 1) * RESTORE_PART_BYTES]
                await self.write("state.restore", part=part, data=data, **fields, **staged)
            decoding = preparing(self._state, restore_id)
            if decoding is not None:  # let every server decode it beside its raft thread
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.wrap_future(decoding), RESTORE_DECODE_WAIT)
            return await self.write("state.restore.commit", **fields)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.write("state.restore.abort", id=restore_id)
            raise

    @property
    def restores(self) -> int:
        """How many restores this server's state has applied (controllers restart on a new one)."""
        return self._state.restores

    async def wait_for_change(self, tables: tuple[str, ...], index: int, timeout: float) -> int:
        """Block until one of `tables` changes past `index` (or the timeout).

        A waiter parks on its tables only: an apply wakes the waiters of the
        tables it changed, not every blocking query (see `_on_applied`).
        Returns the tables' index. While the server shuts down it returns
        after a short pause, so loops calling it neither hang nor spin.
        """
        loop = self._bridge.loop
        deadline = loop.time() + timeout
        while True:
            current = max(self._state.table_index.get(t, 0) for t in tables)
            remaining = deadline - loop.time()
            if current > index or remaining <= 0:
                return current
            if self._bridge.closing:
                await asyncio.sleep(min(0.05, remaining))
                return current
            fut: asyncio.Future[None] = loop.create_future()
            for t in tables:
                self._table_waiters.setdefault(t, set()).add(fut)
            try:
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation
                # that arrives while `fut` completes (shutdown does both at once),
                # and a controller loop would then never end.
                async with asyncio.timeout(remaining):
                    await fut
            except TimeoutError:
                pass
            finally:
                for t in tables:
                    waiters = self._table_waiters.get(t)
                    if waiters is not None:
                        waiters.discard(fut)

    def _on_applied(self) -> None:
        """After applies reach this loop: wake the waiters of tables that moved."""
        seen = self._table_seen
        for table, waiters in self._table_waiters.items():
            now = self._state.table_index.get(table, 0)
            if seen.get(table) != now:
                seen[table] = now
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(None)
        if self._bridge.closing:
            for waiters in self._table_waiters.values():
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(None)

    async def wait_for_leader(self, timeout: float | None = None) -> None:
        """Until a leader is known (NoLeader after `timeout`, by default the write timeout)."""
        loop = self._bridge.loop
        await self._bridge.wait_for_leader(loop.time() + (timeout or self._bridge.timeout))

    @property
    def is_leader(self) -> bool:
        return self._node.is_leader

    def raft_status(self) -> dict[str, Any]:
        """This server's raft numbers (cheap: no tick-thread round trip)."""
        n = self._node
        return {
            "is_leader": n.is_leader,
            "term": n.term,
            "commit_index": n.commit_index,
            "applied_index": n.applied_index,
        }

    async def members(self) -> list[str]:
        """The raft addresses of the voting members, as this server's raft sees them."""
        return await self._on_tick(self._node.members)

    async def snapshot(self, wait: float) -> bool:
        """Compact this server's raft log into a snapshot; whether it was written
        within `wait` seconds.

        pysyncobj takes a forced snapshot at the next moment its compaction
        schedule allows, and writes none while the last one already covers
        every applied entry (consistent reads add no entries): a `noop` goes
        first, so the snapshot also holds every write acknowledged before.
        """
        path = self._node.snapshot_path
        before = _mtime(path)
        await self.write("noop")
        await self._on_tick(self._node.force_compaction)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while _mtime(path) == before and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return _mtime(path) != before

    def known_leader(self) -> bool:
        return self._node.leader is not None

    def last_contact_ms(self) -> int | None:
        age = self._node.leader_contact_age()
        return None if age is None else int(age * 1000)

    def is_ready(self) -> bool:
        n = self._node
        return n.leader is not None and n.applied_index >= n.commit_index

    def leader_server(self) -> dict[str, Any] | None:
        """The leader's row in the servers table (name, api_address), if known."""
        leader = self._node.leader
        if leader is None:
            return None
        with self.read() as view:
            for row in view.servers.values():
                if row["raft_address"] == leader:
                    return row
        return {"name": None, "raft_address": leader, "api_address": None}

    async def _on_tick(self, fn: Any) -> Any:
        return await asyncio.wrap_future(self._node.run_on_tick(fn))

    async def status(self) -> dict[str, Any]:
        view = await self._on_tick(self._node.peer_view)
        leader = self.leader_server()
        members = view["peers"]
        reachable = sum(1 for p in members if p["connected"])
        return {
            "leader": leader["name"] if leader else None,
            "leader_raft_address": self._node.leader,
            "leader_api_address": leader["api_address"] if leader else None,
            "node": self.identity.name,
            "raft_address": self.identity.raft_address,
            "is_leader": self._node.is_leader,
            "members": len(members),
            "reachable_members": reachable,
            "healthy": self.is_ready() and reachable > len(members) // 2,
            "raft_term": self._node.term,
            "commit_index": self._node.commit_index,
            "applied_index": self._node.applied_index,
            "state_index": self._state.index,
        }

    async def peers(self) -> list[dict[str, Any]]:
        view = await self._on_tick(self._node.peer_view)
        with self.read() as state:
            by_addr = {row["raft_address"]: row for row in state.servers.values()}
        leader = self._node.leader
        out = []
        for p in view["peers"]:
            row = by_addr.get(p["raft_address"], {})
            out.append(
                {
                    "name": row.get("name"),
                    "raft_address": p["raft_address"],
                    "api_address": row.get("api_address"),
                    "voter": True,
                    "role": "leader" if p["raft_address"] == leader else "follower",
                    "connected": p["connected"],
                    "last_contact_ms": p["last_contact_ms"],
                }
            )
        return out

    # --- membership and leadership (leader only) -------------------------
    async def add_server(self, raft_address: str) -> None:
        async with self._membership_lock:  # pysyncobj does not serialize changes
            if raft_address in await self._on_tick(self._node.members):
                return
            reason = await self._bridge.membership("add", raft_address)
            if reason != OK:
                raise CommandRejected(409, "membership_change_failed", f"raft refused: {reason}")

    async def remove_server(self, raft_address: str) -> None:
        async with self._membership_lock:
            if raft_address not in await self._on_tick(self._node.members):
                raise CommandRejected(404, "peer_not_found", f"{raft_address} is not a member")
            reason = await self._bridge.membership("remove", raft_address)
            if reason != OK:
                raise CommandRejected(409, "membership_change_failed", f"raft refused: {reason}")

    async def step_down(self, wait: float = 3.0) -> None:
        """Before a clean shutdown: hand leadership over instead of making the
        others wait an election timeout (best effort, bounded)."""
        if not self._node.is_leader:
            return
        try:
            new = await self.transfer_leadership(None, wait)
            log.info("handed leadership to %s before shutting down", new)
        except CommandRejected as e:
            log.info("could not hand leadership over: %s", e.message)

    async def transfer_leadership(self, target: str | None, wait: float = 5.0) -> str:
        """Ask the leader (this node) to hand over; returns the new leader's raft address."""
        if len(await self._on_tick(self._node.members)) < 2:
            raise CommandRejected(409, "transfer_failed", "there is no other server to lead")
        old = self._node.leader
        deadline = time.monotonic() + wait
        reason = "denied"
        # Refused until the target is caught up: retry for a while (notes #"What works").
        while time.monotonic() < deadline:
            if self._node.leader != old and self._node.leader is not None:
                return self._node.leader
            if self._node.is_leader:
                reason = await self._on_tick(lambda: self._node.transfer_leadership(target))
            if reason == OK:
                # Confirm by watching the leader change.
                while time.monotonic() < deadline:
                    new = self._node.leader
                    if new is not None and new != old:
                        return new
                    await asyncio.sleep(0.01)
                break
            await asyncio.sleep(0.05)
        raise CommandRejected(
            409, "transfer_failed", f"leadership was not transferred: raft answered {reason}"
        )
