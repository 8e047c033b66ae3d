"""FSM operations on cluster metadata: server names and API addresses."""

from __future__ import annotations

from typing import Any

from raft.changes import Changes
from raft.fsm_results import fail, ok
from raft.state import State


def noop(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    return ok()


def server_register(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    name, raft_addr, api_addr = cmd.get("name"), cmd.get("raft_address"), cmd.get("api_address")
    if not all(isinstance(v, str) and v for v in (name, raft_addr, api_addr)):
        return fail(400, "invalid_server", "name, raft_address and api_address are required")
    servers = state.table("servers")
    # A raft address belongs to one name: a re-used address replaces the old entry.
    for other, row in list(servers.items()):
        if row["raft_address"] == raft_addr and other != name:
            changes.wrote("servers", other, row)
            del servers[other]
    changes.wrote("servers", name, servers.get(name))
    servers[name] = {"name": name, "raft_address": raft_addr, "api_address": api_addr}
    state.touch("servers", index)
    return ok(server=servers[name])


def server_forget(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    servers = state.table("servers")
    name = cmd.get("name")
    if name not in servers:
        return fail(404, "peer_not_found", f"server '{name}' is not known")
    changes.wrote("servers", name, servers.pop(name))
    state.touch("servers", index)
    return ok()
