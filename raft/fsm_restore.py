"""FSM operations restoring a backup: `state.restore` (a part of it) and
`state.restore.abort`.

A backup's body (raft.backup) travels through the log in parts of at most
raft.replica.RESTORE_PART_BYTES, each a command `{id, part, parts, size,
sha256, format, data}`, so every server stages the same parts in the same
order and applies the restore at the same raft index: the last part. Part 0
starts a restore (replacing one being staged: the newest upload wins, and
the older one's next part is refused with 409 `restore_superseded`).

The last part checks the whole body (its size and sha256), decodes it and
replaces the tables (raft.state.State.replace_tables: the running cluster's
servers and request memory are kept). A body that does not check or decode
changes nothing but the staging (400). The restore's own index is above both
the running cluster's and the backup's (`index_offset`): indexes stay
monotonic for blocking queries and agents, whatever cluster the backup came
from. The staged parts are part of the state (raft.state.capture), so a
raft snapshot taken in the middle of a restore carries them to a new server.

A backup of a newer snapshot format than this server reads never gets here:
raft.formats stops the server on the command's `format` before applying it.
No events are derived: the backup brings its own event ring.
"""

from __future__ import annotations

import hashlib
from typing import Any

from raft.backup import BodyError, decode_body
from raft.changes import Changes
from raft.fsm_results import fail, ok
from raft.state import State

MAX_PARTS = 100_000


def _int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _refused(cmd: dict[str, Any]) -> dict[str, Any] | None:
    if not (isinstance(cmd.get("id"), str) and cmd["id"]):
        return fail(400, "invalid_command", "id must name the restore")
    if not (_int(cmd.get("parts"), 1) and cmd["parts"] <= MAX_PARTS):
        return fail(400, "invalid_command", f"parts must be from 1 to {MAX_PARTS}")
    if not (_int(cmd.get("part"), 0) and cmd["part"] < cmd["parts"]):
        return fail(400, "invalid_command", "part must be from 0 to parts - 1")
    if not (_int(cmd.get("size"), 0) and isinstance(cmd.get("data"), bytes)):
        return fail(400, "invalid_command", "size must be a count of bytes, data bytes")
    sha = cmd.get("sha256")
    if not (isinstance(sha, str) and len(sha) == 64):
        return fail(400, "invalid_command", "sha256 must be 64 hex digits")
    return None


def state_restore(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    refused = _refused(cmd)
    if refused is not None:
        return refused
    restore_id, part, parts = cmd["id"], cmd["part"], cmd["parts"]
    if part == 0:
        state.restoring = {
            "id": restore_id,
            "parts": parts,
            "size": cmd["size"],
            "sha256": cmd["sha256"],
            "chunks": [],
        }
    staged = state.restoring
    if staged is None or staged["id"] != restore_id:
        return fail(
            409, "restore_superseded", f"restore {restore_id} is not the one being received"
        )
    if len(staged["chunks"]) != part:
        return fail(
            409,
            "restore_out_of_order",
            f"restore {restore_id}: part {part} arrived, part {len(staged['chunks'])} expected",
        )
    staged["chunks"].append(cmd["data"])
    if part + 1 < parts:
        return ok(restore=restore_id, received=part + 1, parts=parts)
    state.restoring = None
    return _apply(state, staged, index)


def _apply(state: State, staged: dict[str, Any], index: int) -> dict[str, Any]:
    body = b"".join(staged["chunks"])
    if len(body) != staged["size"] or hashlib.sha256(body).hexdigest() != staged["sha256"]:
        return fail(400, "snapshot_corrupt", "the restored body does not match its sha256")
    try:
        snapshot = decode_body(body)
    except BodyError as e:
        return fail(400, "snapshot_invalid", str(e))
    new_index = max(index, snapshot["index"] + 1)
    state.replace_tables(snapshot, new_index)
    state.index_offset += new_index - index
    state.restores += 1
    counts = {name: len(rows) for name, rows in state.tables.items()}
    return ok(
        restore=staged["id"], index=new_index, restored_index=snapshot["index"], tables=counts
    )


def state_restore_abort(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """Drop the staged parts of restore `id` (an upload that failed half way)."""
    staged = state.restoring
    if staged is None or staged["id"] != cmd.get("id"):
        return ok(aborted=False)
    state.restoring = None
    return ok(aborted=True)
