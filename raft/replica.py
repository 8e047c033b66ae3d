"""`Replica`: this server's view of the replicated state, for the API and controllers.

It bundles the tables, the raft node and the asyncio bridge, and offers the
few operations callers need: write a command, wait for a consistent view,
read status, change membership, transfer leadership. Nothing outside raft/
touches the node's internals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from raft.bridge import NoLeader, RaftBridge
from raft.commands import new_command
from raft.node import OK, RaftNode
from raft.state import State

log = logging.getLogger("heroctld.replica")

__all__ = ["CommandRejected", "NoLeader", "Replica", "ServerIdentity"]


class CommandRejected(Exception):
    """The FSM refused a command (a 4xx for the caller)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ServerIdentity:
    name: str
    raft_address: str
    api_address: str  # how other servers and clients reach this API: http://host:port


class Replica:
    def __init__(self, identity: ServerIdentity, state: State, node: RaftNode, bridge: RaftBridge):
        self.identity = identity
        self.state = state
        self.node = node
        self.bridge = bridge
        self._membership_lock = asyncio.Lock()
        self._table_waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._table_seen: dict[str, int] = {}
        bridge.apply_listeners.append(self._on_applied)

    # --- writes -------------------------------------------------------
    async def write(self, op: str, **fields: Any) -> dict[str, Any]:
        result = await self.bridge.propose(new_command(op, **fields))
        if not result.get("ok"):
            raise CommandRejected(result["status"], result["error"], result["message"])
        return result

    # --- reads ----------------------------------------------------------
    async def consistent(self) -> int:
        """Returns once every write acknowledged before the call is applied here."""
        return await self.bridge.barrier()

    @property
    def index(self) -> int:
        return self.state.index

    def table_index(self, table: str) -> int:
        return self.state.table_index.get(table, 0)

    async def wait_for_change(self, tables: tuple[str, ...], index: int, timeout: float) -> int:
        """Block until one of `tables` changes past `index` (or the timeout).

        A waiter parks on its tables only: an apply wakes the waiters of the
        tables it changed, not every blocking query (see `_on_applied`).
        Returns the tables' index. While the server shuts down it returns
        after a short pause, so loops calling it neither hang nor spin.
        """
        loop = self.bridge.loop
        deadline = loop.time() + timeout
        while True:
            current = max(self.state.table_index.get(t, 0) for t in tables)
            remaining = deadline - loop.time()
            if current > index or remaining <= 0:
                return current
            if self.bridge.closing:
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
            now = self.state.table_index.get(table, 0)
            if seen.get(table) != now:
                seen[table] = now
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(None)
        if self.bridge.closing:
            for waiters in self._table_waiters.values():
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(None)

    def known_leader(self) -> bool:
        return self.node.leader is not None

    def last_contact_ms(self) -> int | None:
        age = self.node.leader_contact_age()
        return None if age is None else int(age * 1000)

    def is_ready(self) -> bool:
        n = self.node
        return n.leader is not None and n.applied_index >= n.commit_index

    def leader_server(self) -> dict[str, Any] | None:
        """The leader's row in the servers table (name, api_address), if known."""
        leader = self.node.leader
        if leader is None:
            return None
        with self.state.read() as s:
            for row in s.table("servers").values():
                if row["raft_address"] == leader:
                    return row
        return {"name": None, "raft_address": leader, "api_address": None}

    async def on_tick(self, fn: Any) -> Any:
        return await asyncio.wrap_future(self.node.run_on_tick(fn))

    async def status(self) -> dict[str, Any]:
        view = await self.on_tick(self.node.peer_view)
        leader = self.leader_server()
        members = view["peers"]
        reachable = sum(1 for p in members if p["connected"])
        return {
            "leader": leader["name"] if leader else None,
            "leader_raft_address": self.node.leader,
            "leader_api_address": leader["api_address"] if leader else None,
            "node": self.identity.name,
            "raft_address": self.identity.raft_address,
            "is_leader": self.node.is_leader,
            "members": len(members),
            "reachable_members": reachable,
            "healthy": self.is_ready() and reachable > len(members) // 2,
            "raft_term": self.node.term,
            "commit_index": self.node.commit_index,
            "applied_index": self.node.applied_index,
            "state_index": self.state.index,
        }

    async def peers(self) -> list[dict[str, Any]]:
        view = await self.on_tick(self.node.peer_view)
        with self.state.read() as s:
            by_addr = {row["raft_address"]: row for row in s.table("servers").values()}
        leader = self.node.leader
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
            if raft_address in await self.on_tick(self.node.members):
                return
            reason = await self.bridge.membership("add", raft_address)
            if reason != OK:
                raise CommandRejected(409, "membership_change_failed", f"raft refused: {reason}")

    async def remove_server(self, raft_address: str) -> None:
        async with self._membership_lock:
            if raft_address not in await self.on_tick(self.node.members):
                raise CommandRejected(404, "peer_not_found", f"{raft_address} is not a member")
            reason = await self.bridge.membership("remove", raft_address)
            if reason != OK:
                raise CommandRejected(409, "membership_change_failed", f"raft refused: {reason}")

    async def step_down(self, wait: float = 3.0) -> None:
        """Before a clean shutdown: hand leadership over instead of making the
        others wait an election timeout (best effort, bounded)."""
        if not self.node.is_leader:
            return
        try:
            new = await self.transfer_leadership(None, wait)
            log.info("handed leadership to %s before shutting down", new)
        except CommandRejected as e:
            log.info("could not hand leadership over: %s", e.message)

    async def transfer_leadership(self, target: str | None, wait: float = 5.0) -> str:
        """Ask the leader (this node) to hand over; returns the new leader's raft address."""
        if len(await self.on_tick(self.node.members)) < 2:
            raise CommandRejected(409, "transfer_failed", "there is no other server to lead")
        old = self.node.leader
        deadline = time.monotonic() + wait
        reason = "denied"
        # Refused until the target is caught up: retry for a while (notes #"What works").
        while time.monotonic() < deadline:
            if self.node.leader != old and self.node.leader is not None:
                return self.node.leader
            if self.node.is_leader:
                reason = await self.on_tick(lambda: self.node.transfer_leadership(target))
            if reason == OK:
                # Confirm by watching the leader change.
                while time.monotonic() < deadline:
                    new = self.node.leader
                    if new is not None and new != old:
                        return new
                    await asyncio.sleep(0.01)
                break
            await asyncio.sleep(0.05)
        raise CommandRejected(
            409, "transfer_failed", f"leadership was not transferred: raft answered {reason}"
        )
