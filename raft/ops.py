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
