"""Events derived from what a command changed, table by table.

An operation records the rows it writes in the tables the rules read
(`ANNOUNCED`, raft.changes); after it succeeded, `announce` compares each
recorded row with the row now stored and appends what that implies to the
ring (raft.fsm_events), rule by rule (`RULES`): allocations, jobs
(raft.job_events), nodes, servers, secrets. The same change says the same
thing whichever operation made it, and there is no second table of
operations to keep in step with the first.

Total: a bug here costs the events of one command (logged), never the apply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from raft.changes import Changes
from raft.commands import timestamp
from raft.fsm_events import Derived, emit
from raft.fsm_ingress import job_claims
from raft.job_events import deployment_events, job_row_events, job_status_events
from raft.state import State

log = logging.getLogger("heroctld.fsm")

_NODE_WATCHED = ("status", "eligibility", "drain", "name", "address")
_ALLOC_WATCHED = ("status", "desired_status", "healthy")


def announce(state: State, changes: Changes, cmd: dict[str, Any], index: int) -> None:
    """Derive and append the events of one applied command (never raises)."""
    try:
        derived = derive(state, changes)
        ts = timestamp(cmd)
        for event_type, data in derived:
            emit(state, event_type, data, ts, index)
    except Exception:
        log.exception("event derivation failed for %s at index %d", cmd.get("op"), index)


# --- allocations -----------------------------------------------------------------------
def _alloc_data(doc: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "alloc": doc["id"],
        "name": doc.get("name"),
        "job": doc.get("job"),
        "group": doc.get("group"),
        "job_version": doc.get("job_version"),
        "node": doc.get("node"),
        "node_name": doc.get("node_name"),
        "status": doc.get("status"),
        "desired_status": doc.get("desired_status"),
        "healthy": doc.get("healthy"),
        "previous_status": old.get("status") if old else None,
        "reason": doc.get("desired_reason"),
    }


def _restarts(doc: dict[str, Any]) -> int:
    states = doc.get("task_states")
    if not isinstance(states, dict):
        return 0
    return sum(
        t.get("restarts", 0)
        for t in states.values()
        if isinstance(t, dict) and isinstance(t.get("restarts"), int)
    )


def _allocation_events(state: State, changes: Changes) -> Derived:
    """`alloc.updated` when one is placed or its status, desired status, health
    or restarts moved; `alloc.failed` when it failed or was lost. A forgotten
    one (alloc.gc) says nothing: its stop was said."""
    out: Derived = []
    allocs = state.table("allocations")
    for alloc_id, (old, _) in changes.rows("allocations").items():
        new = allocs.get(alloc_id)
        if new is None:
            continue
        if old is None:
            out.append(("alloc.updated", dict(_alloc_data(new, None), reason="placed")))
            continue
        data = _alloc_data(new, old)
        status, was = new.get("status"), old.get("status")
        if status in ("failed", "lost") and status != was:
            if status == "lost" and not data["reason"]:
                data["reason"] = "its node is gone"
            out.append(("alloc.failed", data))
            continue
        changed = any(new.get(k) != old.get(k) for k in _ALLOC_WATCHED)
        if _restarts(new) > _restarts(old):
            data["restarts"] = _restarts(new)
            changed = True
        if changed:
            out.append(("alloc.updated", data))
    return out


# --- nodes, servers, secrets -----------------------------------------------------------
def _node_events(state: State, changes: Changes) -> Derived:
    """`node.down` when a node went down, else `node.updated` with the action
    its operation recorded, unless nothing people watch changed (an agent
    that re-registers as it was)."""
    out: Derived = []
    nodes = state.table("nodes")
    for node_id, (old, action) in changes.rows("nodes").items():
        new = nodes.get(node_id)
        if new is None:
            continue
        data = {
            "node": new["id"],
            "name": new.get("name"),
            "status": new.get("status"),
            "previous_status": old.get("status") if old else None,
            "eligibility": new.get("eligibility"),
            "draining": bool(new.get("drain")),
        }
        if new.get("status") == "down" and (old is None or old.get("status") != "down"):
            out.append(("node.down", data))
        elif old is None or any(new.get(k) != old.get(k) for k in _NODE_WATCHED):
            out.append(("node.updated", dict(data, action=action or "updated")))
    return out


def _server_events(state: State, changes: Changes) -> Derived:
    """`node.down` for a server that left: its row is gone and no other name
    holds its raft address (one that re-registered under a new name did not)."""
    out: Derived = []
    servers = state.table("servers")
    for name, (old, _) in changes.rows("servers").items():
        if old is None or name in servers:
            continue
        address = old.get("raft_address")
        if any(row["raft_address"] == address for row in servers.values()):
            continue
        data = {"server": name, "raft_address": address, "reason": "removed from the cluster"}
        out.append(("node.down", data))
    return out


def _secret_events(state: State, changes: Changes) -> Derived:
    """`secret.changed` for a new version (created, updated, rolled back) or a
    deletion: names and versions only. A re-encryption keeps the version and
    says nothing."""
    out: Derived = []
    secrets = state.table("secrets")
    for name, (old, _) in changes.rows("secrets").items():
        new = secrets.get(name)
        if new is None:
            out.append(("secret.changed", {"name": name, "version": None, "action": "deleted"}))
            continue
        if old is not None and new["version"] == old["version"]:
            continue
        data: dict[str, Any] = {"name": name, "version": new["version"]}
        action = "created" if old is None else "updated"
        latest = new["versions"][-1]
        if "rollback_of" in latest:
            action = "rolled_back"
            data["rollback_of"] = latest["rollback_of"]
        out.append(("secret.changed", dict(data, action=action)))
    return out


def _ingress_events(state: State, changes: Changes) -> Derived:
    """`ingress.updated` for an API-declared host written or deleted, and for
    every host whose job-declared routes a job's new version (or deletion)
    changed."""
    out: Derived = []
    table = state.table("ingress")
    for host, (_old, action) in changes.rows("ingress").items():
        new = table.get(host)
        data = {"host": host, "action": action or ("deleted" if new is None else "updated")}
        if new is not None:
            data["routes"] = [r["path"] for r in new["routes"]]
        out.append(("ingress.updated", data))
    jobs = state.table("jobs")
    for name, (old, _) in changes.rows("jobs").items():
        before = {(h, p, r["group"], r["port"]) for h, p, r in job_claims(old or {})}
        after = {(h, p, r["group"], r["port"]) for h, p, r in job_claims(jobs.get(name) or {})}
        for host in sorted({c[0] for c in before ^ after}):
            paths = sorted(c[1] for c in after if c[0] == host)
            action = "updated" if paths else "deleted"
            out.append(
                ("ingress.updated", {"host": host, "job": name, "routes": paths, "action": action})
            )
    return out


def _cert_events(state: State, changes: Changes) -> Derived:
    """`cert.renewed` (and `ingress.updated`) when a host gets a new
    certificate, `cert.failed` when an order for one failed."""
    out: Derived = []
    certs = state.table("certs")
    for host, (old, _) in changes.rows("certs").items():
        new = certs.get(host)
        if new is None:
            continue
        old = old or {}
        if new.get("sha256") and new.get("sha256") != old.get("sha256"):
            data = {
                "host": host,
                "serial": new.get("serial"),
                "not_after": new.get("not_after"),
                "issuer": new.get("issuer"),
                "renewal": bool(old.get("sha256")),
            }
            out.append(("cert.renewed", data))
            out.append(("ingress.updated", {"host": host, "action": "certificate"}))
        if new.get("failures", 0) > old.get("failures", 0):
            data = {"host": host, "error": new.get("last_error"), "failures": new["failures"]}
            out.append(("cert.failed", dict(data, retry_at=new.get("retry_at"))))
    return out


Rule = Callable[[State, Changes], Derived]
# (the tables a rule reads the changes of, the rule), in the order a command's
# events come out. A rule runs only when one of its tables changed.
RULES: tuple[tuple[frozenset[str], Rule], ...] = (
    (frozenset({"allocations"}), _allocation_events),
    (frozenset({"jobs"}), job_row_events),
    (frozenset({"jobs", "job_status", "allocations"}), job_status_events),
    (frozenset({"deployments"}), deployment_events),
    (frozenset({"nodes"}), _node_events),
    (frozenset({"servers"}), _server_events),
    (frozenset({"secrets"}), _secret_events),
    (frozenset({"ingress", "jobs"}), _ingress_events),
    (frozenset({"certs"}), _cert_events),
)
# The tables whose changes become events: every operation records every row it
# changes in them (tests/raft/test_operations.py checks it).
ANNOUNCED: frozenset[str] = frozenset().union(*(tables for tables, _ in RULES))


def derive(state: State, changes: Changes) -> Derived:
    """The events `changes` imply (updating `event_marks` as it goes)."""
    out: Derived = []
    written = changes.tables.keys()
    for tables, rule in RULES:
        if not written.isdisjoint(tables):
            out += rule(state, changes)
    return out
