"""FSM operations on access control: bootstrap, policies, roles, tokens, users.

Everything secret is made by the server that receives the request and only
its hash (token secrets, refresh tokens, passwords) or its ciphertext (the
JWT signing key) travels in the command, so the raft log, the snapshots and
the remembered results never hold a usable credential. Timestamps (`ts`,
milliseconds) come in the command; the FSM never reads a clock.

Deleting a user or a token, or changing a user's password, deletes its
sessions (raft.fsm_sessions) in the same command, so every server stops
accepting the JWTs made from it at the same index.
"""

from __future__ import annotations

from typing import Any

from raft.changes import Changes
from raft.commands import timestamp
from raft.fsm_results import delete_named, fail, filled, ok, upsert_refused
from raft.fsm_sessions import drop_sessions
from raft.state import State

TOKEN_TYPES = ("management", "client", "service")
USER_TYPES = ("management", "client")


def _names(value: Any) -> list[str] | None:
    if value is None:
        return []
    if isinstance(value, list) and all(filled(v) for v in value):
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


# --- bootstrap -------------------------------------------------------------
def acl_bootstrap(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    meta = state.table("acl_meta")
    if "bootstrap" in meta:
        return fail(409, "already_bootstrapped", "the cluster's ACL system is already bootstrapped")
    token, user, jwt_key = cmd.get("token"), cmd.get("user"), cmd.get("jwt_key")
    if not (
        isinstance(token, dict)
        and filled(token.get("accessor_id"))
        and filled(token.get("secret_hash"))
        and isinstance(user, dict)
        and filled(user.get("username"))
        and (user.get("password_hash") is None or filled(user.get("password_hash")))
        and isinstance(jwt_key, dict)
        and isinstance(jwt_key.get("ciphertext"), bytes)
    ):
        return fail(400, "invalid_command", "bootstrap needs a token, a user and a signing key")
    ts = timestamp(cmd)
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
def policy_upsert(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    pol = cmd.get("policy")
    if not isinstance(pol, dict) or not filled(pol.get("name")):
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


def policy_delete(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    name = cmd.get("name")
    if (refused := delete_named(state, "acl_policies", name, "policy", index)) is not None:
        return refused
    return ok(name=name)


def role_upsert(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    role = cmd.get("role")
    if not isinstance(role, dict) or not filled(role.get("name")):
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


def role_delete(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    name = cmd.get("name")
    if (refused := delete_named(state, "acl_roles", name, "role", index)) is not None:
        return refused
    return ok(name=name)


# --- tokens ------------------------------------------------------------------
def token_create(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    tok = cmd.get("token")
    if not (
        isinstance(tok, dict) and filled(tok.get("accessor_id")) and filled(tok.get("secret_hash"))
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
        "create_time": timestamp(cmd),
        "create_index": index,
        "modify_index": index,
    }
    tokens[doc["accessor_id"]] = doc
    hashes[doc["secret_hash"]] = doc["accessor_id"]
    state.touch("acl_tokens", index)
    state.touch("acl_token_hashes", index)
    return ok(token=public_token(doc))


def token_update(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
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


def token_delete(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    tokens = state.table("acl_tokens")
    acc = cmd.get("accessor_id")
    existing = tokens.pop(acc, None) if isinstance(acc, str) else None
    if existing is None:
        return fail(404, "token_not_found", f"token '{acc}' does not exist")
    state.table("acl_token_hashes").pop(existing["secret_hash"], None)
    state.touch("acl_tokens", index)
    state.touch("acl_token_hashes", index)
    sessions = drop_sessions(state, f"token:{acc}", index)
    return ok(accessor_id=acc, sessions_revoked=sessions)


def public_token(doc: dict[str, Any]) -> dict[str, Any]:
    """A token without its secret hash (what results and responses carry)."""
    return {k: v for k, v in doc.items() if k != "secret_hash"}


# --- users -------------------------------------------------------------------
def user_upsert(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    user = cmd.get("user")
    if not isinstance(user, dict) or not filled(user.get("username")):
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
            "create_time": timestamp(cmd),
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
        if user["password_hash"] is not None and not filled(user["password_hash"]):
            return fail(400, "invalid_field", "password_hash must be a string")
        doc["password_hash"] = user["password_hash"]
        password_changed = existing is not None
    doc["modify_index"] = index
    table[name] = doc
    state.touch("acl_users", index)
    if password_changed:  # a new password ends every session of the old one
        drop_sessions(state, f"user:{name}", index)
    return ok(user=public_user(doc), created=existing is None)


def user_delete(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    name = cmd.get("username")
    if (refused := delete_named(state, "acl_users", name, "user", index)) is not None:
        return refused
    sessions = drop_sessions(state, f"user:{name}", index)
    return ok(username=name, sessions_revoked=sessions)


def public_user(doc: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k != "password_hash"}
    out["has_password"] = bool(doc.get("password_hash"))
    return out
