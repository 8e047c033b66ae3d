"""The deterministic state machine: `apply_batch(state, commands, raft_index)`.

Pure: no clock, no randomness, no I/O. Every server applies the same entries
in the same order and ends with the same tables. It never raises (an
exception inside pysyncobj's apply wedges the cluster, notes/pysyncobj.md #1):
an unknown op, a malformed command or a bug becomes an error result. The one
exception is on purpose: a batch holding a command of a newer format than
this server applies raises raft.fatal.FormatTooNew before any of it is
applied (raft.formats), and the server stops.

A command's index is the entry's raft index plus the state's `index_offset`
(0 until a restore of a backup from a higher index: raft.fsm_restore).

A command runs its operation (raft.operations), then, if it succeeded, the
events of what it changed are appended (raft.event_derivation). A retried
request id answers what it answered the first time, without applying again.
"""

from __future__ import annotations

import logging
from typing import Any

from raft.changes import Changes
from raft.event_derivation import announce
from raft.fatal import RaftFatal
from raft.formats import check_commands
from raft.fsm_results import fail
from raft.operations import OPERATIONS
from raft.state import State

log = logging.getLogger("heroctld.fsm")


def apply_command(state: State, cmd: dict[str, Any] | None, index: int) -> dict[str, Any]:
    if cmd is None:
        return fail(400, "invalid_command", "command did not decode")
    rid = cmd.get("rid")
    if isinstance(rid, str) and rid in state.requests:
        return state.remembered(rid)
    op = cmd.get("op")
    operation = OPERATIONS.get(op) if isinstance(op, str) else None
    if operation is None:
        result = fail(400, "unknown_op", f"unknown op {op!r}")
    else:
        changes = Changes()
        try:
            result = operation(state, cmd, index, changes)
        except RaftFatal:  # this server cannot apply it: it stops (raft.fatal)
            raise
        except Exception as exc:  # a bug must not wedge raft: answer instead
            log.exception("op %s failed at index %d", op, index)
            result = fail(500, "internal", f"{type(exc).__name__} while applying {op}")
        else:
            if changes.tables and result.get("ok"):
                announce(state, changes, cmd, index)  # never raises
    result.setdefault("index", index)  # a restore answers the index it moved to
    if isinstance(rid, str):
        state.remember_request(rid, result)
    return result


def apply_batch(
    state: State, commands: list[dict[str, Any] | None], raft_index: int
) -> list[dict[str, Any]]:
    check_commands(commands)  # FormatTooNew: nothing of the batch is applied
    with state.lock:
        results = [apply_command(state, cmd, raft_index + state.index_offset) for cmd in commands]
        state.index = raft_index + state.index_offset
        return results
