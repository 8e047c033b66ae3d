"""The deterministic state machine: `apply_batch(state, commands, index)`.

Pure: no clock, no randomness, no I/O. Every server applies the same entries
in the same order and ends with the same tables. It never raises (an
exception inside pysyncobj's apply wedges the cluster, notes/pysyncobj.md #1):
an unknown op, a malformed command or a bug becomes an error result.
"""

from __future__ import annotations

import logging
from typing import Any

from raft import (  # noqa: F401  (register their ops)
    fsm_acl,
    fsm_allocs,
    fsm_cluster,
    fsm_events,
    fsm_jobs,
    fsm_nodes,
    fsm_secrets,
    fsm_webhooks,
)
from raft.ops import HANDLERS, fail
from raft.state import State

log = logging.getLogger("heroctld.fsm")


def apply_command(state: State, cmd: dict[str, Any] | None, index: int) -> dict[str, Any]:
    if cmd is None:
        return fail(400, "invalid_command", "command did not decode")
    rid = cmd.get("rid")
    if isinstance(rid, str) and rid in state.requests:
        return state.remembered(rid)
    handler = HANDLERS.get(cmd.get("op"))  # type: ignore[arg-type]
    if handler is None:
        result = fail(400, "unknown_op", f"unknown op {cmd.get('op')!r}")
    else:
        pre = fsm_events.before(state, cmd)
        try:
            result = handler(state, cmd, index)
            fsm_events.after(state, cmd, result, index, pre)  # total: never raises
        except Exception as exc:  # a bug must not wedge raft: answer instead
            log.exception("op %s failed at index %d", cmd.get("op"), index)
            result = fail(500, "internal", f"{type(exc).__name__} while applying {cmd.get('op')}")
    result["index"] = index
    if isinstance(rid, str):
        state.remember_request(rid, result)
    return result


def apply_batch(
    state: State, commands: list[dict[str, Any] | None], index: int
) -> list[dict[str, Any]]:
    with state.lock:
        results = [apply_command(state, cmd, index) for cmd in commands]
        state.index = index
        return results
