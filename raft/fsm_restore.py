"""FSM operations restoring a backup: `state.restore` (a part of its body),
`state.restore.commit` and `state.restore.abort`.

A backup's body (raft.backup) travels through the log in parts of at most
raft.replica.RESTORE_PART_BYTES, each a command `{id, part, parts, size,
sha256, format, data}`, so every server stages the same parts in the same
order. Part 0 starts a restore (replacing one being staged: the newest upload
wins, and the older one's next part is refused with 409
`restore_superseded`). The staged parts are part of the state
(raft.state.capture), so a raft snapshot taken in the middle of a restore
carries them to a new server.

Once a server has staged the last part it starts decoding the body in a
thread of its own (`preparing`: pure, so its result is what decoding at the
commit would give; decoding 60 MB of state takes about a second, and the raft
thread must not spend it: a leader that does misses its heartbeats). Then
`state.restore.commit` checks the whole body (size and sha256), takes the
decoded state (waiting for the thread, or decoding there when this server
has none: it started from a raft snapshot, or replays its journal) and
installs it in one step (raft.state.State.adopt: the running cluster's
servers and request memory are kept). A body that does not check or decode
changes nothing but the staging (400).

The commit's index is above both the running cluster's and the backup's
(`index_offset`): indexes stay monotonic for blocking queries and agents,
whatever cluster the backup came from. A backup of a newer snapshot format
than this server reads never gets this far: raft.formats stops the server on
the commands' `format` before applying them. No events are derived: the
backup brings its own event ring.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import threading
from typing import Any

from raft.backup import BodyError, decode_body
from raft.changes import Changes
from raft.fsm_results import fail, ok
from raft.state import State

MAX_PARTS = 100_000
COMMIT_OPS = ("state.restore", "state.restore.commit")  # raft.formats checks their format


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


def _superseded(restore_id: Any) -> dict[str, Any]:
    return fail(409, "restore_superseded", f"restore {restore_id} is not the one being received")


def state_restore(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """Stage one part; the last one starts decoding the body beside the raft thread."""
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
            "complete": False,
        }
        state.preparing = None
    staged = state.restoring
    if staged is None or staged["id"] != restore_id:
        return _superseded(restore_id)
    if len(staged["chunks"]) != part or staged["complete"]:
        return fail(
            409,
            "restore_out_of_order",
            f"restore {restore_id}: part {part} arrived, part {len(staged['chunks'])} expected",
        )
    staged["chunks"].append(cmd["data"])
    if part + 1 == parts:
        staged["complete"] = True
        state.preparing = (restore_id, _prepare_beside(b"".join(staged["chunks"])))
    return ok(restore=restore_id, received=part + 1, parts=parts, staged=part + 1 == parts)


def prepare(body: bytes) -> tuple[int, State]:
    """(the backup's index, a scratch state of its tables): the pure, slow part."""
    snapshot = decode_body(body)
    return snapshot["index"], State.of_tables(snapshot["tables"])


def _prepare_beside(body: bytes) -> concurrent.futures.Future[tuple[int, State]]:
    future: concurrent.futures.Future[tuple[int, State]] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(prepare(body))
        except BaseException as exc:  # handed to the commit, which answers or stops
            future.set_exception(exc)

    threading.Thread(target=run, name="restore-decode", daemon=True).start()
    return future


def preparing(state: State, restore_id: str) -> concurrent.futures.Future[Any] | None:
    """The decoding of restore `restore_id` this server runs, if any (raft.replica
    waits for it before proposing the commit)."""
    current = state.preparing
    return current[1] if current is not None and current[0] == restore_id else None


def state_restore_commit(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """Install the staged restore `id`."""
    restore_id = cmd.get("id")
    staged = state.restoring
    if staged is None or staged["id"] != restore_id:
        return _superseded(restore_id)
    if not staged["complete"]:
        return fail(409, "restore_incomplete", f"restore {restore_id} has parts still to come")
    future = preparing(state, staged["id"])
    state.restoring, state.preparing = None, None
    body = b"".join(staged["chunks"])
    if len(body) != staged["size"] or hashlib.sha256(body).hexdigest() != staged["sha256"]:
        return fail(400, "snapshot_corrupt", "the restored body does not match its sha256")
    try:
        restored_index, scratch = future.result() if future is not None else prepare(body)
    except BodyError as e:
        return fail(400, "snapshot_invalid", str(e))
    new_index = max(index, restored_index + 1)
    state.adopt(scratch, new_index)
    state.index_offset += new_index - index
    state.restores += 1
    counts = {name: len(rows) for name, rows in state.tables.items()}
    return ok(restore=staged["id"], index=new_index, restored_index=restored_index, tables=counts)


def state_restore_abort(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """Drop the staged parts of restore `id` (an upload that failed half way)."""
    staged = state.restoring
    if staged is None or staged["id"] != cmd.get("id"):
        return ok(aborted=False)
    state.restoring, state.preparing = None, None
    return ok(aborted=True)
