"""The replicated tables and their indexes.

Only `raft.fsm` mutates a `State`; everyone else reads through `read()` which
holds the apply lock, so a reader never sees half of a command. Stored
documents are never mutated in place (the FSM replaces them), so a reader may
keep a reference after the lock is released, and a snapshot only needs a
shallow copy of each table.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import msgpack

from raft.formats import SNAPSHOT_FORMAT, check_snapshot_format
from raft.packing import pack, unpack

# Every table the FSM knows. Adding one is backwards compatible: a snapshot
# without it loads as empty.
TABLES: tuple[str, ...] = (
    "jobs",  # name -> current job document
    "job_versions",  # name -> list of previous documents (raft.packing bytes), oldest first
    "servers",  # server name -> {name, raft_address, api_address}
    "meta",  # singleton values (cluster id, ...)
    "nodes",  # node id -> node document (registered by its agent)
    "allocations",  # alloc id -> allocation document
    "job_status",  # job name -> {placement failures, deployment progress}
    "acl_meta",  # bootstrap marker, wrapped JWT signing key
    "acl_policies",  # name -> {name, description, rules}
    "acl_roles",  # name -> {name, description, policies}
    "acl_tokens",  # accessor id -> token (sha256 of the secret, never the secret)
    "acl_token_hashes",  # sha256 of a token secret -> accessor id
    "acl_users",  # username -> user (scrypt hash of the password)
    "acl_sessions",  # session id -> {subject, jti, refresh token hash, expires_at}
    "secrets",  # name -> {version, versions: [{key_id, nonce, ciphertext, ...}]}
    "keyring",  # "keyring" -> {primary, keys}: ids of keys derived from the cluster key
    "events",  # seq -> {seq, index, type, ts, data}: a bounded ring (raft.fsm_events)
    "event_marks",  # "seq" -> last seq; "job:<name>" -> what was announced for it
    "webhooks",  # id -> {id, url, events, secret (sealed), ...}
    "deliveries",  # webhook id -> {cursor, pending, history, redeliver}
    "pki",  # "ca" -> {cert (PEM), key (sealed), fingerprint}: the cluster's TLS CA (raft.fsm_pki)
    "ingress",  # host -> {host, routes, tls, cert}: domains declared through the API (fsm_ingress)
    "certs",  # host -> {status, cert_pem, key (sealed), not_after, ...}: ingress certificates
    "acme",  # "account", "challenge:<token>" (http-01), "challenge-alpn:<host>" (fsm_certs)
    "deployments",  # id -> a job version's deployment (raft.deployment_docs, fsm_deployments)
    "ingress_acks",  # node id -> raft index of the last ingress model it applied (fsm_nodes)
)

# How many request ids the FSM remembers for idempotent retries.
REQUEST_MEMORY = 20_000
# The tables a restore (raft.fsm_restore) keeps from the running cluster: who
# its servers are now, not who they were when the backup was taken.
LIVE_TABLES: tuple[str, ...] = ("servers",)

__all__ = ["LIVE_TABLES", "SNAPSHOT_FORMAT", "TABLES", "State", "pack_snapshot", "unpack_snapshot"]


class State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.index = 0
        self.table_index: dict[str, int] = dict.fromkeys(TABLES, 0)
        self.tables: dict[str, dict[str, Any]] = {t: {} for t in TABLES}
        # request id -> result, oldest first, bounded (deterministic eviction).
        self.requests: OrderedDict[str, Any] = OrderedDict()
        # What changed for the leader's scheduler (not replicated, never read
        # by the FSM): job names, and whether any node changed.
        self.changed_jobs: set[str] = set()
        self.nodes_changed = True
        # Derived lookups (not replicated: rebuilt from the tables on load).
        self.allocs_by_node: dict[str, set[str]] = {}
        self.allocs_by_job: dict[str, set[str]] = {}
        self.deployments_by_job: dict[str, set[str]] = {}
        self.active_deployments: set[str] = set()  # running or paused: what the leader drives
        # Replicated, in every snapshot, changed only by a restore (raft.fsm_restore):
        # the state's index is the raft index plus `index_offset`, so that after
        # restoring a backup taken at a higher index the indexes still only grow;
        # `restoring` stages the parts of a restore still arriving; `restores`
        # counts the restores applied (the leader restarts its controllers).
        self.index_offset = 0
        self.restoring: dict[str, Any] | None = None
        self.restores = 0
        # Not replicated: the restore being decoded beside the raft thread
        # (restore id, its future scratch state), raft.fsm_restore.
        self.preparing: tuple[str, Any] | None = None
        self._reading = _Reading(self)

    def read(self) -> _Reading:
        """`with state.read() as s:` a consistent view (the apply lock held)."""
        return self._reading

    def table(self, name: str) -> dict[str, Any]:
        return self.tables[name]

    def remembered(self, rid: str) -> Any:
        packed = self.requests.get(rid)
        return None if packed is None else unpack(packed)

    def touch(self, table: str, index: int) -> None:
        self.table_index[table] = index

    def remember_request(self, rid: str, result: Any) -> None:
        # Packed: results carry whole documents, which would otherwise stay alive.
        self.requests[rid] = pack(result)
        while len(self.requests) > REQUEST_MEMORY:
            self.requests.popitem(last=False)

    # --- snapshots -------------------------------------------------------
    def capture(self, *, backup: bool = False) -> dict[str, Any]:
        """A cheap consistent copy (shallow: documents are immutable).

        `backup`: only what a restore takes (raft.backup): the tables, without
        the request memory or a restore being staged."""
        with self.lock:
            captured: dict[str, Any] = {
                "format": SNAPSHOT_FORMAT,
                "index": self.index,
                "table_index": dict(self.table_index),
                "tables": {name: dict(rows) for name, rows in self.tables.items()},
            }
            if backup:
                return captured
            captured["requests"] = list(self.requests.items())
            captured["index_offset"] = self.index_offset
            captured["restores"] = self.restores
            if self.restoring is not None:
                captured["restoring"] = {**self.restoring, "chunks": list(self.restoring["chunks"])}
            return captured

    def to_bytes(self) -> bytes:
        return pack_snapshot(self.capture())

    def load(self, snapshot: dict[str, Any]) -> None:
        with self.lock:
            self.index = snapshot["index"]
            self.table_index = dict.fromkeys(TABLES, 0)
            self.table_index.update(snapshot.get("table_index", {}))
            self.tables = {t: {} for t in TABLES}
            for name, rows in snapshot.get("tables", {}).items():
                self.tables[name] = dict(rows)
            self.requests = OrderedDict((k, v) for k, v in snapshot.get("requests", []))
            self.index_offset = int(snapshot.get("index_offset", 0))
            self.restores = int(snapshot.get("restores", 0))
            restoring = snapshot.get("restoring")
            self.restoring = dict(restoring) if isinstance(restoring, dict) else None
            self.preparing = None
            self._derive()

    @classmethod
    def of_tables(cls, tables: dict[str, Any]) -> State:
        """A scratch state holding `tables` (the known ones) with its derived
        lookups built: what a restore installs (raft.fsm_restore builds it
        beside the raft thread, then `adopt` takes it in one step)."""
        scratch = cls()
        for name, rows in tables.items():
            if name in scratch.tables and isinstance(rows, dict):
                scratch.tables[name] = rows
        scratch._derive()
        return scratch

    def adopt(self, scratch: State, index: int) -> None:
        """A restore: the scratch state's tables and lookups, but the running
        cluster's LIVE_TABLES, request memory and index; every table changed
        at `index`, and the scheduler sees every job as changed. The caller
        holds the lock; `scratch` is not used afterwards."""
        for name in LIVE_TABLES:
            scratch.tables[name] = self.tables[name]
        self.changed_jobs |= set(self.tables["jobs"]) | set(scratch.tables["jobs"])
        self.tables = scratch.tables
        self.allocs_by_node, self.allocs_by_job = scratch.allocs_by_node, scratch.allocs_by_job
        self.deployments_by_job = scratch.deployments_by_job
        self.active_deployments = scratch.active_deployments
        self.nodes_changed = True
        self.table_index = dict.fromkeys(TABLES, index)
        self.index = index

    def _derive(self) -> None:
        """Rebuild the derived lookups from the tables."""
        self.allocs_by_node, self.allocs_by_job = {}, {}
        self.nodes_changed = True
        for alloc in self.tables["allocations"].values():
            self.index_alloc(alloc)
        self.deployments_by_job, self.active_deployments = {}, set()
        for deployment in self.tables["deployments"].values():
            self.index_deployment(deployment)

    def take_changes(self) -> tuple[set[str], bool]:
        """(jobs changed since the last call, whether nodes changed): for the scheduler."""
        with self.lock:
            jobs, nodes = self.changed_jobs, self.nodes_changed
            self.changed_jobs, self.nodes_changed = set(), False
            return jobs, nodes

    def index_alloc(self, alloc: dict[str, Any]) -> None:
        self.allocs_by_node.setdefault(alloc["node"], set()).add(alloc["id"])
        self.allocs_by_job.setdefault(alloc["job"], set()).add(alloc["id"])

    def unindex_alloc(self, alloc: dict[str, Any]) -> None:
        for lookup, key in (
            (self.allocs_by_node, alloc["node"]),
            (self.allocs_by_job, alloc["job"]),
        ):
            ids = lookup.get(key)
            if ids is not None:
                ids.discard(alloc["id"])
                if not ids:
                    del lookup[key]

    def allocs_of(self, *, node: str | None = None, job: str | None = None) -> list[dict[str, Any]]:
        """Allocation documents of a node or a job, ordered by id."""
        ids = (
            self.allocs_by_node.get(node, set())
            if node is not None
            else self.allocs_by_job.get(job or "", set())
        )
        table = self.tables["allocations"]
        return [table[i] for i in sorted(ids)]

    def index_deployment(self, doc: dict[str, Any]) -> None:
        """Index a stored deployment (again after each write: its status moves)."""
        self.deployments_by_job.setdefault(doc["job"], set()).add(doc["id"])
        if doc["status"] in ("running", "paused", "blocked-on-promotion"):
            self.active_deployments.add(doc["id"])
        else:
            self.active_deployments.discard(doc["id"])

    def unindex_deployment(self, doc: dict[str, Any]) -> None:
        self.active_deployments.discard(doc["id"])
        ids = self.deployments_by_job.get(doc["job"])
        if ids is not None:
            ids.discard(doc["id"])
            if not ids:
                del self.deployments_by_job[doc["job"]]

    def deployments_of(self, job: str) -> list[dict[str, Any]]:
        """The job's deployments, oldest first."""
        table = self.tables["deployments"]
        docs = [table[i] for i in self.deployments_by_job.get(job, ())]
        return sorted(docs, key=lambda d: d["create_index"])

    @classmethod
    def from_bytes(cls, data: bytes) -> State:
        state = cls()
        state.load(unpack_snapshot(data))
        return state


def pack_snapshot(captured: dict[str, Any]) -> bytes:
    return msgpack.packb(captured, use_bin_type=True)


def unpack_snapshot(data: bytes) -> dict[str, Any]:
    """The snapshot's map; ValueError if it is not one of ours, raft.fatal.FormatTooNew
    if it is of a newer format than this server reads."""
    snap = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if isinstance(snap, dict):
        check_snapshot_format(snap.get("format"))
    if not isinstance(snap, dict) or snap.get("format") != SNAPSHOT_FORMAT:
        raise ValueError("not a heroctl snapshot")
    if not isinstance(snap.get("index"), int) or not isinstance(snap.get("tables"), dict):
        raise ValueError("not a heroctl snapshot: no index or tables")
    return snap


class _Reading:
    """The context manager `State.read()` returns: a plain class, since every
    API request enters it and a generator-based one costs ≈1 µs more."""

    __slots__ = ("_state",)

    def __init__(self, state: State) -> None:
        self._state = state

    def __enter__(self) -> State:
        self._state.lock.acquire()
        return self._state

    def __exit__(self, *exc: object) -> None:
        self._state.lock.release()
