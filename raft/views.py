"""Typed reads of the replicated state: what everyone outside raft/ reads.

`with replica.read() as view:` holds the apply lock, so a reader never sees
half of a command; `view.jobs.get(name)`, `view.allocs.by_job(name)`,
`view.events.scan(...)`. Stored documents are never mutated in place (the FSM
replaces them), so a document may be kept after the block ends; the tables
themselves may not (the next apply changes them).

The accessors are made once per `State` and look their table up at each
call (a snapshot load replaces the tables), so a read costs a method call
over the plain dict lookup it wraps.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from typing import Any

from raft import fsm_events, fsm_ingress, fsm_jobs, fsm_pki, fsm_secrets
from raft.state import State

Doc = dict[str, Any]

__all__ = ["Allocations", "Deployments", "Events", "Jobs", "Pki", "Secrets", "StateView", "Table"]


class Table:
    """One replicated table, key -> document, read-only."""

    __slots__ = ("_state", "name")

    def __init__(self, state: State, name: str) -> None:
        self._state = state
        self.name = name

    def _rows(self) -> dict[Any, Any]:
        return self._state.tables[self.name]

    def get(self, key: Any, default: Any = None) -> Any:
        return self._state.tables[self.name].get(key, default)

    def __getitem__(self, key: Any) -> Any:
        return self._state.tables[self.name][key]

    def __contains__(self, key: object) -> bool:
        return key in self._state.tables[self.name]

    def __len__(self) -> int:
        return len(self._state.tables[self.name])

    def __iter__(self) -> Iterator[Any]:
        return iter(self._state.tables[self.name])

    def keys(self) -> KeysView[Any]:
        return self._rows().keys()

    def values(self) -> ValuesView[Any]:
        return self._rows().values()

    def items(self) -> ItemsView[Any, Any]:
        return self._rows().items()

    def copy(self) -> dict[Any, Any]:
        """A shallow copy to keep past the read (documents are immutable)."""
        return dict(self._rows())

    @property
    def index(self) -> int:
        """The raft index of the table's last change."""
        return self._state.table_index.get(self.name, 0)


class Jobs(Table):
    __slots__ = ()

    def versions(self, name: str) -> list[Doc]:
        """Every stored version of a job, newest first."""
        return fsm_jobs.job_versions(self._state, name)


class Allocations(Table):
    __slots__ = ()

    def by_job(self, job: str) -> list[Doc]:
        """The job's allocations, ordered by id."""
        return self._state.allocs_of(job=job)

    def by_node(self, node_id: str) -> list[Doc]:
        """The node's allocations, ordered by id."""
        return self._state.allocs_of(node=node_id)


class Deployments(Table):
    __slots__ = ()

    def by_job(self, job: str) -> list[Doc]:
        """The job's deployments, oldest first."""
        return self._state.deployments_of(job)

    def active(self) -> list[Doc]:
        """The running and paused ones (from an index: no scan of the table)."""
        table = self._state.tables["deployments"]
        return [table[i] for i in sorted(self._state.active_deployments)]


class Secrets(Table):
    __slots__ = ()

    def keyring(self) -> Doc | None:
        """`{primary, keys}`: the ids of the keys secrets are sealed with."""
        return fsm_secrets.keyring(self._state)

    def keys_in_use(self) -> dict[str, int]:
        """key id -> how many stored versions it seals."""
        return fsm_secrets.keys_in_use(self._state)


class Pki(Table):
    __slots__ = ()

    def ca(self) -> Doc | None:
        """`{cert, key (sealed), fingerprint, ...}`: the cluster's CA, once made."""
        return fsm_pki.ca(self._state)


class Ingress(Table):
    __slots__ = ()

    def domains(self) -> dict[str, Doc]:
        """Every served host: the API's entries and the jobs' (raft.fsm_ingress)."""
        return fsm_ingress.active_domains(self._state)


class Acme(Table):
    __slots__ = ()

    def account(self) -> Doc | None:
        return self.get("account")

    def challenges(self) -> dict[str, str]:
        """http-01 token -> key authorization, for every node's ingress."""
        return {
            row["token"]: row["key_authorization"]
            for key, row in self.items()
            if key.startswith("challenge:")
        }

    def alpn_challenges(self) -> dict[str, Doc]:
        """host -> {cert_pem, key (sealed, label ``acme-alpn:<host>``)}: the
        tls-alpn-01 certificates every node's ingress shows to ``acme-tls/1``."""
        return {
            row["host"]: {"cert_pem": row["cert_pem"], "key": row["key"]}
            for key, row in self.items()
            if key.startswith("challenge-alpn:")
        }


class Events(Table):
    """The bounded ring of events (raft.fsm_events), by seq."""

    __slots__ = ()

    def first_seq(self) -> int:
        return fsm_events.first_seq(self._state)

    def last_seq(self) -> int:
        return fsm_events.last_seq(self._state)

    def seq_at_index(self, index: int) -> int:
        return fsm_events.seq_at_index(self._state, index)

    def scan(
        self, after: int, topics: tuple[str, ...] | list[str] | None = None, limit: int = 1000
    ) -> tuple[list[Doc], int]:
        return fsm_events.scan(self._state, after, topics, limit)


class StateView:
    """Every table, typed where it has reads of its own. Valid inside
    `replica.read()`; the accessors are shared by every read."""

    __slots__ = (
        "_state",
        "jobs",
        "job_versions",
        "job_status",
        "allocs",
        "nodes",
        "servers",
        "secrets",
        "events",
        "webhooks",
        "deliveries",
        "pki",
        "ingress",
        "certs",
        "acme",
        "deployments",
        "ingress_acks",
        "acl_meta",
        "acl_policies",
        "acl_roles",
        "acl_tokens",
        "acl_token_hashes",
        "acl_users",
        "acl_sessions",
    )

    def __init__(self, state: State) -> None:
        self._state = state
        self.jobs = Jobs(state, "jobs")
        self.job_versions = Table(state, "job_versions")
        self.job_status = Table(state, "job_status")
        self.allocs = Allocations(state, "allocations")
        self.nodes = Table(state, "nodes")
        self.servers = Table(state, "servers")
        self.secrets = Secrets(state, "secrets")
        self.events = Events(state, fsm_events.EVENTS)
        self.webhooks = Table(state, "webhooks")
        self.deliveries = Table(state, "deliveries")
        self.pki = Pki(state, "pki")
        self.ingress = Ingress(state, "ingress")
        self.certs = Table(state, "certs")
        self.acme = Acme(state, "acme")
        self.deployments = Deployments(state, "deployments")
        self.ingress_acks = Table(state, "ingress_acks")
        self.acl_meta = Table(state, "acl_meta")
        self.acl_policies = Table(state, "acl_policies")
        self.acl_roles = Table(state, "acl_roles")
        self.acl_tokens = Table(state, "acl_tokens")
        self.acl_token_hashes = Table(state, "acl_token_hashes")
        self.acl_users = Table(state, "acl_users")
        self.acl_sessions = Table(state, "acl_sessions")

    @property
    def index(self) -> int:
        """The raft index of the last applied entry."""
        return self._state.index

    def index_of(self, *tables: str) -> int:
        """The latest change among the named tables (the X-HeroCtl-Index of a
        read of them; the names long polls wait on)."""
        ti = self._state.table_index
        return max(ti.get(t, 0) for t in tables)


class Reading:
    """`with replica.read() as view:` the apply lock held (a plain class: every
    API request enters it, and a generator-based one costs ≈1 µs more)."""

    __slots__ = ("_lock", "_view")

    def __init__(self, state: State) -> None:
        self._lock = state.lock
        self._view = StateView(state)

    def __enter__(self) -> StateView:
        self._lock.acquire()
        return self._view

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
