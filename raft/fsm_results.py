"""What FSM operations share: their answer, a result or a refusal (the FSM
never raises), and the refusals of upserts and deletes of named rows, so every
table says `409 <kind>_exists` and `404 <kind>_not_found` the same way.
"""

from __future__ import annotations

from typing import Any

from raft.state import State


def ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}


def fail(status: int, code: str, message: str) -> dict[str, Any]:
    """A refused command: the FSM never raises, it answers."""
    return {"ok": False, "status": status, "error": code, "message": message}


def filled(value: Any) -> bool:
    """A command field that must be a non-empty string."""
    return isinstance(value, str) and bool(value)


def upsert_refused(
    existing: dict[str, Any] | None, cmd: dict[str, Any], kind: str, name: str
) -> dict[str, Any] | None:
    """The refusal when ``create_only`` meets an existing ``kind`` or ``update_only``
    a missing one; None when the upsert may go on."""
    if existing is not None and cmd.get("create_only"):
        return fail(409, f"{kind}_exists", f"{kind} '{name}' already exists")
    if existing is None and cmd.get("update_only"):
        return fail(404, f"{kind}_not_found", f"{kind} '{name}' does not exist")
    return None


def delete_named(
    state: State, table_name: str, name: Any, kind: str, index: int
) -> dict[str, Any] | None:
    """Delete ``name`` from a table keyed by name and touch the table; the refusal
    (404 ``<kind>_not_found``) when there is no such entry, else None."""
    table = state.table(table_name)
    if not isinstance(name, str) or name not in table:
        return fail(404, f"{kind}_not_found", f"{kind} '{name}' does not exist")
    del table[name]
    state.touch(table_name, index)
    return None
