"""FSM operations on nodes: registration, status, drain, eligibility.

Heartbeats are not replicated (the leader keeps them in memory); only the
transitions they cause (ready <-> down) are.

A worker-only node registers the URL of its agent API (``agent_api``) and
its node secret, which arrives here already sealed by the server that took
the registration (``agent_secret``: ``{"nonce", "ciphertext"}``): the raft
log and snapshots never hold it in the clear, and no API answer shows it.
"""

from __future__ import annotations

from typing import Any

from raft.changes import Changes
from raft.fsm_results import fail, ok
from raft.state import State

NODE_STATUSES = ("initializing", "ready", "down")
# What an agent reports about its node (``ingress``: whether it serves the
# ingress, and why not); the server adds the agent API fields (the URL it
# checked and the secret it sealed).
NODE_FIELDS = (
    "name",
    "address",
    "resources",
    "drivers",
    "labels",
    "attributes",
    "port_range",
    "ingress",
)
REGISTER_FIELDS = (*NODE_FIELDS, "agent_api", "agent_secret", "owner")
SECRET_FIELDS = ("agent_secret", "owner")  # kept out of every API answer


def public_node(doc: dict[str, Any]) -> dict[str, Any]:
    """A node document fit for an API answer (without its sealed secret)."""
    return {k: v for k, v in doc.items() if k not in SECRET_FIELDS}


def _sealed(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("nonce"), bytes)
        and isinstance(value.get("ciphertext"), bytes)
    )


def _node(state: State, node_id: Any) -> dict[str, Any] | None:
    return state.table("nodes").get(node_id) if isinstance(node_id, str) else None


def _put(
    state: State, changes: Changes, doc: dict[str, Any], index: int, action: str
) -> dict[str, Any]:
    """Store a node's new document; `action` is what its `node.updated` event says."""
    doc["modify_index"] = index
    state.nodes_changed = True
    nodes = state.table("nodes")
    changes.wrote("nodes", doc["id"], nodes.get(doc["id"]), action)
    nodes[doc["id"]] = doc
    state.touch("nodes", index)
    return doc


def node_register(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    node = cmd.get("node")
    if not isinstance(node, dict) or not isinstance(node.get("id"), str) or not node.get("name"):
        return fail(400, "invalid_node", "node must have an id and a name")
    if node.get("agent_secret") is not None and not _sealed(node["agent_secret"]):
        return fail(400, "invalid_node", "a node secret must arrive sealed (nonce, ciphertext)")
    existing = _node(state, node["id"])
    owner, held = node.get("owner"), (existing or {}).get("owner")
    if held is not None and owner != held:
        if str(held).startswith("server:"):
            why = f"it belongs to server '{str(held).removeprefix('server:')}'"
        else:
            why = "it is registered with another node secret: re-registering it needs that secret"
        return fail(403, "node_owned", f"node '{node['id']}' cannot be registered again: {why}")
    doc = (
        dict(existing)
        if existing
        else {
            "id": node["id"],
            "eligibility": "eligible",
            "drain": None,
            "create_index": index,
            "registered_at": cmd.get("ts", 0),
        }
    )
    for key in REGISTER_FIELDS:
        if key in node:
            doc[key] = node[key]
    if doc.get("status") != "ready":
        doc["status"] = "ready"
        doc["status_updated_at"] = cmd.get("ts", 0)
    action = "re-registered" if existing else "registered"
    return ok(node=_put(state, changes, doc, index, action))


def node_status(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    existing = _node(state, cmd.get("id"))
    if existing is None:
        return fail(404, "node_not_found", f"node '{cmd.get('id')}' does not exist")
    status = cmd.get("status")
    if status not in NODE_STATUSES:
        return fail(400, "invalid_field", f"status must be one of {', '.join(NODE_STATUSES)}")
    if existing.get("status") == status:
        return ok(node=existing, changed=False)
    doc = dict(existing, status=status, status_updated_at=cmd.get("ts", 0))
    return ok(node=_put(state, changes, doc, index, "status"), changed=True)


def node_ingress_applied(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """A node's ingress serves the model of raft index `index` (or later):
    what a stopping allocation's drain waits for (domain.ingress_routing).
    Only ever moves forward; not announced (no event)."""
    node_id, applied = cmd.get("id"), cmd.get("index")
    if _node(state, node_id) is None:
        return fail(404, "node_not_found", f"node '{node_id}' does not exist")
    if not isinstance(applied, int) or isinstance(applied, bool) or applied < 0:
        return fail(400, "invalid_field", "field 'index' must be a non-negative integer")
    table = state.table("ingress_acks")
    if applied > table.get(node_id, 0):
        table[node_id] = min(applied, index)  # never ahead of the log itself
        state.touch("ingress_acks", index)
    return ok(applied=table.get(node_id, 0))


def node_drain(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    """Start (`enable`) or cancel a drain; a started drain has a deadline."""
    existing = _node(state, cmd.get("id"))
    if existing is None:
        return fail(404, "node_not_found", f"node '{cmd.get('id')}' does not exist")
    doc = dict(existing)
    if cmd.get("enable"):
        deadline = cmd.get("deadline_seconds")
        if not isinstance(deadline, int) or deadline < 0:
            return fail(400, "invalid_field", "deadline_seconds must be a non-negative integer")
        ts = cmd.get("ts", 0)
        doc["drain"] = {
            "started_at": ts,
            "deadline_at": ts + deadline * 1000,
            "deadline_seconds": deadline,
        }
        doc["eligibility"] = "ineligible"
        action = "drain"
    else:
        doc["drain"] = None
        if not cmd.get("keep_ineligible"):
            doc["eligibility"] = "eligible"
        action = "drain cancelled"
    return ok(node=_put(state, changes, doc, index, action))


def node_drain_complete(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    existing = _node(state, cmd.get("id"))
    if existing is None or not existing.get("drain"):
        return ok(changed=False)
    doc = dict(
        existing,
        drain=None,
        eligibility="ineligible",
        last_drain={**existing["drain"], "completed_at": cmd.get("ts", 0)},
    )
    return ok(node=_put(state, changes, doc, index, "drain complete"), changed=True)


def node_eligibility(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    existing = _node(state, cmd.get("id"))
    if existing is None:
        return fail(404, "node_not_found", f"node '{cmd.get('id')}' does not exist")
    eligible = cmd.get("eligible")
    if not isinstance(eligible, bool):
        return fail(400, "invalid_field", "eligible must be true or false")
    if existing.get("drain") and eligible:
        return fail(
            409, "node_draining", "a draining node cannot be made eligible; cancel the drain"
        )
    doc = dict(existing, eligibility="eligible" if eligible else "ineligible")
    return ok(node=_put(state, changes, doc, index, "eligibility"))
