"""FSM operations on sessions: a JWT and its refresh token, per subject.

Subjects are `user:<username>` or `token:<accessor_id>`. Only hashes travel
(the refresh token's), like every credential in raft.fsm_acl, and, for the
refresh grace window, the new refresh token sealed under a key derived from
the cluster key (why: api.security.refresh_grace). A session
ends when it expires, when it is revoked, when its refresh token is replayed,
when its subject opens more than `max_sessions` (the oldest end first), or
with its subject (raft.fsm_acl deletes a user's or a token's sessions in the
command that deletes it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raft.changes import Changes
from raft.commands import timestamp
from raft.fsm_results import fail, filled, ok
from raft.state import State


def _delete_where(state: State, index: int, ended: Callable[[dict[str, Any]], bool]) -> int:
    sessions = state.table("acl_sessions")
    dead = [sid for sid, row in sessions.items() if ended(row)]
    for sid in dead:
        del sessions[sid]
    if dead:
        state.touch("acl_sessions", index)
    return len(dead)


def drop_sessions(state: State, subject: str, index: int) -> int:
    """Delete every session of `subject`; how many there were."""
    return _delete_where(state, index, lambda row: row["subject"] == subject)


def subject_exists(state: State, subject: str) -> bool:
    kind, _, ident = subject.partition(":")
    if kind == "user":
        return ident in state.table("acl_users")
    if kind == "token":
        return ident in state.table("acl_tokens")
    return False


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _end_oldest(state: State, subject: str, keep: int) -> int:
    """Delete `subject`'s oldest sessions beyond `keep`; how many."""
    sessions = state.table("acl_sessions")
    # Oldest first: by creation index, then table order (a batch shares one
    # index; the table keeps insertion order, in snapshots too).
    mine = sorted(
        (sid for sid, row in sessions.items() if row["subject"] == subject),
        key=lambda sid: sessions[sid]["create_index"],
    )
    for sid in mine[: max(0, len(mine) - keep)]:
        del sessions[sid]
    return max(0, len(mine) - keep)


def session_create(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """A new session; with `max_sessions` (the proposer's `[auth] max_sessions`),
    the subject's oldest sessions beyond it end in the same command, so logins
    cannot grow the replicated table without bound."""
    s = cmd.get("session")
    ts = timestamp(cmd)
    cap = cmd.get("max_sessions")
    if not (
        isinstance(s, dict)
        and all(filled(s.get(k)) for k in ("id", "subject", "jti", "refresh_hash"))
        and isinstance(s.get("expires_at"), int)
    ):
        return fail(400, "invalid_command", "a session needs id, subject, jti, refresh_hash")
    if cap is not None and not (_whole(cap) and cap > 0):
        return fail(400, "invalid_command", "max_sessions must be a positive integer")
    if not subject_exists(state, s["subject"]):
        return fail(401, "invalid_credentials", "the identity no longer exists")
    sessions = state.table("acl_sessions")
    if s["id"] in sessions:
        return fail(409, "session_exists", "session id already in use")
    _delete_where(state, index, lambda row: row["expires_at"] <= ts)  # the expired ones
    doc = {
        "id": s["id"],
        "subject": s["subject"],
        "jti": s["jti"],
        "refresh_hash": s["refresh_hash"],
        "expires_at": s["expires_at"],
        "create_time": ts,
        "create_index": index,
        "modify_index": index,
    }
    sessions[doc["id"]] = doc
    ended = _end_oldest(state, doc["subject"], cap) if cap is not None else 0
    state.touch("acl_sessions", index)
    return ok(session_id=doc["id"], subject=doc["subject"], sessions_ended=ended)


def _well_formed_grace(value: Any) -> bool:
    """A rotate command's `grace`: the window in ms, the new JWT's `iat` and
    `exp` (seconds) and the new refresh token sealed by the proposer."""
    if not isinstance(value, dict):
        return False
    sealed = value.get("sealed")
    return (
        all(_whole(value.get(k)) for k in ("ms", "issued_at", "token_expires"))
        and value["ms"] >= 0
        and isinstance(sealed, dict)
        and all(isinstance(sealed.get(k), bytes) for k in ("nonce", "ciphertext"))
    )


def _end(state: State, sid: str, index: int) -> None:
    del state.table("acl_sessions")[sid]
    state.touch("acl_sessions", index)


def session_rotate(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """Swap a session's JWT and refresh token for new ones, once.

    The caller proves itself with the current JWT's `jti` or the current
    refresh token's hash. The refresh token just replaced, presented again
    before the grace window of that rotation closes, gets the pair that
    replaced it (`grace: true` and what the proposer needs to rebuild it);
    presented after, it ends the whole session (it was stolen or replayed).
    """
    sessions = state.table("acl_sessions")
    sid, ts = cmd.get("id"), timestamp(cmd)
    grace = cmd.get("grace")
    if not (filled(cmd.get("jti")) and filled(cmd.get("refresh_hash"))):
        return fail(400, "invalid_command", "rotate needs the new jti and refresh hash")
    if grace is not None and not _well_formed_grace(grace):
        return fail(400, "invalid_command", "grace needs ms, issued_at, token_expires, sealed")
    row = sessions.get(sid) if isinstance(sid, str) else None
    if row is None or row["expires_at"] <= ts:
        if row is not None:
            _end(state, sid, index)
        return fail(401, "invalid_session", "the session has ended; log in again")
    presented = cmd.get("expect_refresh_hash")
    if presented is not None:
        last = row.get("grace")
        if last is not None and presented == last["replaced"] and ts < last["until"]:
            answer = {k: last[k] for k in ("issued_at", "token_expires", "sealed")}
            return ok(session_id=sid, subject=row["subject"], grace=True, jti=row["jti"], **answer)
        if presented != row["refresh_hash"]:
            _end(state, sid, index)
            return fail(401, "invalid_refresh_token", "refresh token was already used")
    elif cmd.get("expect_jti") != row["jti"]:
        return fail(401, "invalid_token", "that token is no longer current for its session")
    if not subject_exists(state, row["subject"]):
        _end(state, sid, index)
        return fail(401, "invalid_session", "the identity no longer exists")
    doc = dict(row)
    doc.update(jti=cmd["jti"], refresh_hash=cmd["refresh_hash"], modify_index=index, grace=None)
    if grace is not None:
        doc["grace"] = {
            "replaced": row["refresh_hash"],
            "until": ts + grace["ms"],
            "issued_at": grace["issued_at"],
            "token_expires": grace["token_expires"],
            "sealed": {k: grace["sealed"][k] for k in ("nonce", "ciphertext")},
        }
    if isinstance(cmd.get("expires_at"), int):
        doc["expires_at"] = cmd["expires_at"]
    sessions[sid] = doc
    state.touch("acl_sessions", index)
    return ok(session_id=sid, subject=doc["subject"])


def session_delete(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    sessions = state.table("acl_sessions")
    sid = cmd.get("id")
    existed = isinstance(sid, str) and sessions.pop(sid, None) is not None
    if existed:
        state.touch("acl_sessions", index)
    return ok(revoked=existed)
