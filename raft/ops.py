"""The registry of FSM operations and the result helpers they share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raft.state import State

Handler = Callable[[State, dict[str, Any], int], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}


def op(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn

    return register


def ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}


def fail(status: int, code: str, message: str) -> dict[str, Any]:
    """A refused command: the FSM never raises, it answers."""
    return {"ok": False, "status": status, "error": code, "message": message}


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
