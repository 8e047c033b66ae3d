"""FSM ops of access control: bootstrap once, references, revocation, totality."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from raft.commands import decode_batch, encode_batch, encode_command
from raft.fsm import apply_batch
from raft.state import State

JWT_KEY = {"nonce": b"\0" * 12, "ciphertext": b"wrapped-key-bytes"}


def cmd(op: str, ts: int = 1000, **fields: Any) -> dict[str, Any]:
    return {"op": op, "ts": ts, **fields}


def apply(state: State, *cmds: dict[str, Any], index: int | None = None) -> list[dict[str, Any]]:
    entry = encode_batch([encode_command(c) for c in cmds])
    return apply_batch(state, decode_batch(entry), index if index is not None else state.index + 1)


def one(state: State, c: dict[str, Any]) -> dict[str, Any]:
    return apply(state, c)[0]


def boot(state: State) -> dict[str, Any]:
    return one(
        state,
        cmd(
            "acl.bootstrap",
            token={"accessor_id": "acc-boot", "secret_hash": "h-boot"},
            user={"username": "admin", "password_hash": "scrypt$..."},
            jwt_key=JWT_KEY,
        ),
    )


def test_bootstrap_works_once() -> None:
    s = State()
    first = boot(s)
    assert first["ok"] and first["accessor_id"] == "acc-boot"
    assert s.table("acl_tokens")["acc-boot"]["type"] == "management"
    assert s.table("acl_token_hashes")["h-boot"] == "acc-boot"
    assert s.table("acl_users")["admin"]["type"] == "management"
    again = boot(s)
    assert not again["ok"] and again["status"] == 409 and again["error"] == "already_bootstrapped"
    assert "secret_hash" not in str(first) and "h-boot" not in str(first)


def test_bootstrap_rejects_malformed() -> None:
    s = State()
    for bad in (
        cmd("acl.bootstrap"),
        cmd("acl.bootstrap", token={"accessor_id": "a"}, user={"username": "u"}, jwt_key=JWT_KEY),
        cmd("acl.bootstrap", token={"accessor_id": "a", "secret_hash": "h"}, user=None),
    ):
        r = one(s, bad)
        assert not r["ok"] and r["status"] == 400
    assert "bootstrap" not in s.table("acl_meta")


def test_policies_roles_tokens_and_references() -> None:
    s = State()
    boot(s)
    pol = {"name": "ro", "rules": {"jobs": "read"}}
    assert one(s, cmd("acl.policy.upsert", policy=pol, create_only=True))["created"]
    dup = one(s, cmd("acl.policy.upsert", policy=pol, create_only=True))
    assert dup["status"] == 409
    upd = one(s, cmd("acl.policy.upsert", policy={**pol, "description": "d"}))
    assert upd["ok"] and not upd["created"] and upd["policy"]["description"] == "d"
    missing = one(s, cmd("acl.role.upsert", role={"name": "r", "policies": ["nope"]}))
    assert missing["status"] == 400 and missing["error"] == "unknown_policy"
    assert one(s, cmd("acl.role.upsert", role={"name": "r", "policies": ["ro"]}))["ok"]
    tok = {
        "accessor_id": "acc-1",
        "secret_hash": "h1",
        "type": "client",
        "policies": ["ro"],
        "roles": ["r"],
    }
    created = one(s, cmd("acl.token.create", token=tok))
    assert created["ok"] and "secret_hash" not in created["token"]
    assert one(s, cmd("acl.token.create", token=tok))["status"] == 409
    bad_type = one(s, cmd("acl.token.create", token={**tok, "accessor_id": "x", "type": "root"}))
    assert bad_type["status"] == 400
    updated = one(s, cmd("acl.token.update", accessor_id="acc-1", policies=[], name="n"))
    assert updated["ok"] and updated["token"]["policies"] == [] and updated["token"]["name"] == "n"
    assert one(s, cmd("acl.token.update", accessor_id="zzz"))["status"] == 404
    assert one(s, cmd("acl.policy.delete", name="ro"))["ok"]
    assert one(s, cmd("acl.policy.delete", name="ro"))["status"] == 404
    assert one(s, cmd("acl.role.delete", name="r"))["ok"]


def session(sid: str, subject: str, jti: str = "j1", expires: int = 10_000) -> dict[str, Any]:
    return {
        "id": sid,
        "subject": subject,
        "jti": jti,
        "refresh_hash": "rh-" + jti,
        "expires_at": expires,
    }


def test_user_password_change_and_delete_end_sessions() -> None:
    s = State()
    boot(s)
    one(s, cmd("acl.user.upsert", user={"username": "bob", "password_hash": "p1"}))
    one(s, cmd("auth.session.create", session=session("s1", "user:bob")))
    r = one(s, cmd("acl.user.upsert", user={"username": "bob", "policies": []}))
    assert r["ok"] and "s1" in s.table("acl_sessions")  # no password change: kept
    assert r["user"]["has_password"] and "password_hash" not in r["user"]
    one(s, cmd("acl.user.upsert", user={"username": "bob", "password_hash": "p2"}))
    assert "s1" not in s.table("acl_sessions")
    one(s, cmd("auth.session.create", session=session("s2", "user:bob")))
    assert one(s, cmd("acl.user.delete", username="bob"))["sessions_revoked"] == 1
    assert one(s, cmd("acl.user.delete", username="bob"))["status"] == 404
    assert one(s, cmd("acl.user.upsert", user={"username": "x"}, update_only=True))["status"] == 404


def _log() -> list[dict[str, Any]]:
    return [
        cmd(
            "acl.bootstrap",
            token={"accessor_id": "a", "secret_hash": "h"},
            user={"username": "admin"},
            jwt_key=JWT_KEY,
        ),
        cmd("acl.policy.upsert", policy={"name": "p", "rules": {"jobs": "write"}}),
        cmd("acl.token.create", token={"accessor_id": "b", "secret_hash": "hb", "policies": ["p"]}),
        cmd("auth.session.create", session=session("s", "token:b")),
        cmd("acl.user.upsert", user={"username": "u", "password_hash": "x", "policies": ["p"]}),
        cmd("acl.token.delete", accessor_id="b"),
    ]


def test_same_log_twice_gives_identical_state() -> None:
    a, b = State(), State()
    for i, c in enumerate(_log(), start=1):
        apply(a, c, index=i)
    for i, c in enumerate(copy.deepcopy(_log()), start=1):
        apply(b, c, index=i)
    assert a.to_bytes() == b.to_bytes()
    assert State.from_bytes(a.to_bytes()).capture() == a.capture()


ACL_OPS = [
    "acl.bootstrap",
    "acl.policy.upsert",
    "acl.policy.delete",
    "acl.role.upsert",
    "acl.role.delete",
    "acl.token.create",
    "acl.token.update",
    "acl.token.delete",
    "acl.user.upsert",
    "acl.user.delete",
    "auth.session.create",
    "auth.session.rotate",
    "auth.session.delete",
]
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    op=st.sampled_from(ACL_OPS),
    fields=st.dictionaries(
        st.sampled_from(
            [
                "token",
                "user",
                "policy",
                "role",
                "session",
                "name",
                "username",
                "accessor_id",
                "id",
                "jti",
                "refresh_hash",
                "expect_jti",
                "policies",
                "jwt_key",
                "create_only",
                "type",
                "ts",
                "expires_at",
            ]
        ),
        _values,
        max_size=5,
    ),
)
def test_acl_ops_are_total(op: str, fields: dict[str, Any]) -> None:
    """Garbage never raises and never becomes a 500 (which would mean a bug in an op)."""
    s = State()
    boot(s)
    result = one(s, {"op": op, **fields})
    assert result.get("status", 200) != 500, result
