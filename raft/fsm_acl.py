"""FSM operations on access control: bootstrap, policies, roles, tokens, users, sessions.

Everything secret is made by the server that receives the request and only
its hash (token secrets, refresh tokens, passwords) or its ciphertext (the
JWT signing key) travels in the command, so the raft log, the snapshots and
the remembered results never hold a usable credential. Timestamps (`ts`,
milliseconds) come in the command; the FSM never reads a clock.

Subjects are `user:<username>` or `token:<accessor_id>`. Deleting a user or
a token deletes its sessions in the same command, so every server stops
accepting the JWTs made from it at the same index.
"""

from __future__ import annotations

from typing import Any

from raft.ops import delete_named, fail, ok, op, upsert_refused
from raft.state import State

TOKEN_TYPES = ("management", "client", "service")
USER_TYPES = ("management", "client")


def _str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _ts(cmd: dict[str, Any]) -> int:
    ts = cmd.get("ts")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else 0


def _names(value: Any) -> list[str] | None:
    if value is None:
        return []
    if isinstance(value, list) and all(_str(v) for v in value):
        return sorted(set(value))
    return None


def _missing_refs(state: State, policies: list[str], roles: list[str]) -> dict[str, Any] | None:
    known_p, known_r = state.table("acl_policies"), state.table("acl_roles")
    for p in policies:
        if p not in known_p:
            return fail(400, "unknown_policy", f"policy '{p}' does not exist")
    for r in roles:
        if r not in known_r:
            return fail(400, "unknown_role", f"role '{r}' does not exist")
    return None


def _drop_sessions(state: State, subject: str, index: int) -> int:
    sessions = state.table("acl_sessions")
    dead = [sid for sid, row in sessions.items() if row["subject"] == subject]
    for sid in dead:
        del sessions[sid]
    if dead:
        state.touch("acl_sessions", index)
    return len(dead)


def subject_exists(state: State, subject: str) -> bool:
    kind, _, ident = subject.partition(":")
    if kind == "user":
        return ident in state.table("acl_users")
    if kind == "token":
        return ident in state.table("acl_tokens")
    return False


# --- bootstrap -------------------------------------------------------------
@op("acl.bootstrap")
def acl_bootstrap(state: State, cmd: dict[str, Any], index: int) -> dict[str, Any]:
    meta = state.table("acl_meta")
    if "bootstrap" in meta:
        return fail(409, "already_bootstrapped", "the cluster's ACL system is already bootstrapped")
    token, user, jwt_key = cmd.get("token"), cmd.get("user"), cmd.get("jwt_key")
    if not (
        isinstance(token, dict)
        and _str(token.get("accessor_id"))
        and _str(token.get("secret_hash"))
        and isinstance(user, dict)
        and _str(user.get("username"))
        and (user.get("password_hash") is None or _str(user.get("password_hash")))
        and isinstance(jwt_key, dict)
        and isinstance(jwt_key.get("ciphertext"), bytes)
    ):
        return fail(400, "invalid_command", "bootstrap needs a token, a user and a signing key")
    ts = _ts(cmd)
    tok = {
        "accessor_id": token["accessor_id"],
        "secret_hash": token["secret_hash"],
        "name": "bootstrap token",
        "type": "management",
        "policies": [],
        "roles": [],
        "expires_at": None,
        "create_time": ts,
        "create_index": index,
        "modify_index": index,
    }
    usr = {
        "username": user["username"],
        "password_hash": user.get("password_hash"),
        "type": "management",
        "policies": [],
        "roles": [],
        "create_time": ts,
        "create_index": index,
        "modify_index": index,
    }
    state.table("acl_tokens")[tok["accessor_id"]] = tok
    state.table("acl_token_hashes")[tok["secret_hash"]] = tok["accessor_id"]
    state.table("acl_users")[usr["username"]] = usr
    meta["bootstrap"] = {"index": index, "time": ts}
    meta["jwt_key"] = {"nonce": jwt_key.get("nonce"), "ciphertext": jwt_key["ciphertext"]}
    for t in ("acl_tokens", "acl_token_hashes", "acl_users", "acl_meta"):
        state.touch(t, index)
    return ok(accessor_id=tok["accessor_id"], username=usr["username"])


# --- policies and roles ----------------------------------------------------
@op("acl.policy.upsert")
def policy_upsert(state: State, cmd: dict[str, Any], index: int) -> dict[str, Any]:
    pol = cmd.get("policy")
    if not isinstance(pol, dict) or not _str(pol.get("name")):
        return fail(400, "invalid_policy", "policy must be an object with a name")
    if not isinstance(pol.get("rules"), dict):
        return fail(400, "invalid_policy", "policy rules must be an object")
    table = state.table("acl_policies")
    existing = table.get(pol["name"])
    if (refused := upsert_refused(existing, cmd, "policy", pol["name"])) is not None:
        return refused
    doc = {
        "name": pol["name"],
        "description": pol.get("description") or "",
        "rules": pol["rules"],
        "create_index": existing["create_index"] if existing else index,
        "modify_index": index,
    }
    table[doc["name"]] = doc
    state.touch("acl_policies", index)
    return ok(policy=doc, created=existing is None)


@op("acl.policy.delete")
def policy_delete(state: State, cmd: dict[str, Any], index: int) -> dict[str, Any]:
    name = cmd.get("name")
    if (refused := delete_named(state, "acl_policies", name, "policy", index)) is not None:
        return refused
    return ok(name=name)


@op("acl.role.upsert")
def role_upsert(state: State, cmd: dict[str, Any], index: int) -> dict[str, Any]:
    role = cmd.get("role")
    if not isinstance(role, dict) or not _str(role.get("name")):
        return fail(400, "invalid_role", "role must be an object with a name")
    policies = _names(role.get("policies"))
    if policies is None:
        return fail(400, "invalid_role", "role policies must be a list of names")
    if (missing := _missing_refs(state, policies, [])) is not None:
        return missing
    table = state.table("acl_roles")
    existing = table.get(role["name"])
    if (refused := upsert_refused(existing, cmd, "role", role["name"])) is not None:
        return refused
    doc = {
        "name": role["name"],
        "description": role.get("description") or "",
        "policies": policies,
        "create_index": existing["create_index"] if existing else index,
        "modify_index": index,
    }
    table[doc["name"]] = doc
    state.touch("acl_roles", index)
    return ok(role=doc, created=existing is None)


@op("acl.role.delete")
def role_delete(state: State, cmd: dict[str, Any], index: int) -> dict[str, Any]:
    name = cmd.get("name")
    if (refused := delete_named(state, "acl_roles", name, "role", index)) is not None:
        return refused
    return ok(name=name)


# --- tokens ------------------------------------------------------------------
@op("acl.token.create")
def token_create(state: State, cmd: dict[str, Any], index: int) -> dict[str, Any]:
    tok = cmd.get("token")
    if not (
        isinstance(tok, dict) and _str(tok.get("accessor_id")) and _str(tok.get("secret_hash"))
    ):
        return fail(400, "invalid_token", "token needs an accessor_id and a secret hash")
    ttype = tok.get("type", "client")
    if ttype not in TOKEN_TYPES:
        return fail(400, "invalid_field", f"token type must be one of {', '.join(TOKEN_TYPES)}")
    policies, roles = _names(tok.get("policies")), _names(tok.get("roles"))
    if policies is None or roles is None:
        return fail(400, "invalid_field", "policies and roles must be lists of names")
    if (missing := _missing_refs(state, policies, roles)) is not None:
        return missing
    tokens, hashes = state.table("acl_tokens"), state.table("acl_token_hashes")
    if tok["accessor_id"] in tokens or tok["secret_hash"] in hashes:
        return fail(409, "token_exists", "a token with that accessor or secret already exists")
    expires = tok.get("expires_at")
    doc = {
        "accessor_id": tok["accessor_id"],
        "secret_hash": tok["secret_hash"],
        "name": tok.get("name") or "",
        "type": ttype,
        "policies": policies,
        "roles": roles,
        "expires_at": expires if isinstance(expires, int) else None,
        "create_time": _ts(cmd),
        "create_index": index,
        "modify_index": index,
    }
    tokens[doc["accessor_id"]] = doc
    hashes[doc["secret_hash"]] = doc["accessor_id"]
    state.touch("acl_tokens", index)
    state.touch("acl_token_hashes", index)
    return ok(token=public_token(doc))


@op("acl.token.update")
def token_update(state: State, cmd: dict[str, Any], index: int) -> dict[str, Any]:
    tokens = state.table("acl_tokens")
    acc = cmd.get("accessor_id")
    existing = tokens.get(acc) if isinstance(acc, str) else None
    if existing is None:
        return fail(404, "token_not_found", f"token '{acc}' does not exist")
    doc = dict(existing)
    for key in ("policies", "roles"):
        if key in cmd:
            names = _names(cmd[key])
            if names is None:
                return fail(400, "invalid_field", f"{key} must be a list of names")
            doc[key] = names
    if (missing := _missing_refs(state, doc["policies"], doc["roles"])) is not None:
        return missing
    if isinstance(cmd.get("name"), str):
        doc["name"] = cmd["name"]
    if cmd.get("type") is not None:
        if cmd["type"] not in TOKEN_TYPES:
            return fail(400, "invalid_field", "unknown token type")
        doc["type"] = cmd["type"]
    doc["modify_index"] = index
    tokens[acc] = doc
    state.touch("acl_tokens", index)
    return ok(token=public_token(doc))


@op("acl.token.delete")
def token_delete(state: State, cmd: dict[str, Any], index: int) -> dict[str, Any]:
    tokens = state.table("acl_tokens")
    acc = cmd.get("accessor_id")
    existing = tokens.pop(acc, None) if isinstance(acc, str) else None
    if existing is None:
        return fail(404, "token_not_found", f"token '{acc}' does not exist")
    state.table("acl_token_hashes").pop(existing["secret_hash"], None)
    state.touch("acl_tokens", index)
    state.touch("acl_token_hashes", index)
    sessions = _drop_sessions(state, f"token:{acc}", index)
    return ok(accessor_id=acc, sessions_revoked=sessions)


def public_token(doc: dict[str, Any]) -> dict[str, Any]:
    """A token without its secret hash (what results and responses carry)."""
    return {k: v for k, v in doc.items() if k != "secret_hash"}


# --- users -------------------------------------------------------------------
@op("acl.user.upsert")
def user_upsert(state: State, cmd: dict[str, Any], index: int) -> dict[str, Any]:
    user = cmd.get("user")
    if not isinstance(user, dict) or not _str(user.get("username")):
        return fail(400, "invalid_user", "user must be an object with a username")
    table = state.table("acl_users")
    name = user["username"]
    existing = table.get(name)
    if (refused := upsert_refused(existing, cmd, "user", name)) is not None:
        return refused
    doc = (
        dict(existing)
        if existing
        else {
            "username": name,
            "password_hash": None,
            "type": "client",
            "policies": [],
            "roles": [],
            "create_time": _ts(cmd),
            "create_index": index,
        }
    )
    for key in ("policies", "roles"):
        if key in user:
            names = _names(user[key])
            if names is None:
                return fail(400, "invalid_field", f"{key} must be a list of names")
            doc[key] = names
    if (missing := _missing_refs(state, doc["policies"], doc["roles"])) is not None:
        return missing
    if user.get("type") is not None:
        if user["type"] not in USER_TYPES:
            return fail(400, "invalid_field", f"user type must be one of {', '.join(USER_TYPES)}")
        doc["type"] = user["type"]
    password_changed = False
    if "password_hash" in user:
        if user["password_hash"] is not None and not _str(user["password_hash"]):
            return fail(400, "invalid_field", "password_hash must be a string")
        doc["password_hash"] = user["password_hash"]
        password_changed = existing is not None
    doc["modify_index"] = index
    table[name] = doc
    state.touch("acl_users", index)
    if password_changed:  # a new password ends every session of the old one
        _drop_sessions(state, f"user:{name}", index)
    return ok(user=public_user(doc), created=existing is None)


@op("acl.user.delete")
def user_delete(state: State, cmd: dict[str, Any], index: int) -> dict[str, Any]:
    name = cmd.get("username")
    if (refused := delete_named(state, "acl_users", name, "user", index)) is not None:
        return refused
    sessions = _drop_sessions(state, f"user:{name}", index)
    return ok(username=name, sessions_revoked=sessions)


def public_user(doc: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k != "password_hash"}
    out["has_password"] = bool(doc.get("password_hash"))
    return out


# --- sessions (a JWT and its refresh token) ----------------------------------
def _prune_sessions(state: State, now: int, index: int) -> None:
    sessions = state.table("acl_sessions")
    dead = [sid for sid, row in sessions.items() if row["expires_at"] <= now]
    for sid in dead:
        del sessions[sid]
    if dead:
        state.touch("acl_sessions", index)


@op("auth.session.create")
def session_create(state: State, cmd: dict[str, Any], index: int) -> dict[str, Any]:
    s = cmd.get("session")
    ts = _ts(cmd)
    if not (
        isinstance(s, dict)
        and all(_str(s.get(k)) for k in ("id", "subject", "jti", "refresh_hash"))
        and isinstance(s.get("expires_at"), int)
    ):
        return fail(400, "invalid_command", "a session needs id, subject, jti, refresh_hash")
    _prune_sessions(state, ts, index)
    if not subject_exists(state, s["subject"]):
        return fail(401, "invalid_credentials", "the identity no longer exists")
    sessions = state.table("acl_sessions")
    if s["id"] in sessions:
        return fail(409, "session_exists", "session id already in use")
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
    state.touch("acl_sessions", index)
    return ok(session_id=doc["id"], subject=doc["subject"])


@op("auth.session.rotate")
def session_rotate(state: State, cmd: dict[str, Any], index: int) -> dict[str, Any]:
    """Swap a session's JWT and refresh token for new ones, once.

    The caller proves itself with the current JWT's `jti` or the current
    refresh token's hash. A refresh token presented a second time kills the
    whole session (it was stolen or replayed).
    """
    sessions = state.table("acl_sessions")
    sid, ts = cmd.get("id"), _ts(cmd)
    row = sessions.get(sid) if isinstance(sid, str) else None
    if row is None or row["expires_at"] <= ts:
        if row is not None:
            del sessions[sid]
            state.touch("acl_sessions", index)
        return fail(401, "invalid_session", "the session has ended; log in again")
    if not (_str(cmd.get("jti")) and _str(cmd.get("refresh_hash"))):
        return fail(400, "invalid_command", "rotate needs the new jti and refresh hash")
    if cmd.get("expect_refresh_hash") is not None:
        if cmd["expect_refresh_hash"] != row["refresh_hash"]:
            del sessions[sid]
            state.touch("acl_sessions", index)
            return fail(401, "invalid_refresh_token", "refresh token was already used")
    elif cmd.get("expect_jti") != row["jti"]:
        return fail(401, "invalid_token", "that token is no longer current for its session")
    if not subject_exists(state, row["subject"]):
        del sessions[sid]
        state.touch("acl_sessions", index)
        return fail(401, "invalid_session", "the identity no longer exists")
    doc = dict(row)
    doc.update(jti=cmd["jti"], refresh_hash=cmd["refresh_hash"], modify_index=index)
    if isinstance(cmd.get("expires_at"), int):
        doc["expires_at"] = cmd["expires_at"]
    sessions[sid] = doc
    state.touch("acl_sessions", index)
    return ok(session_id=sid, subject=doc["subject"])


@op("auth.session.delete")
def session_delete(state: State, cmd: dict[str, Any], index: int) -> dict[str, Any]:
    sessions = state.table("acl_sessions")
    sid = cmd.get("id")
    existed = isinstance(sid, str) and sessions.pop(sid, None) is not None
    if existed:
        state.touch("acl_sessions", index)
    return ok(revoked=existed)
