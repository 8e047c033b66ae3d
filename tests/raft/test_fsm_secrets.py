"""FSM ops of secrets and the keyring: versions as check-and-set, re-encryption, pruning."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from raft.commands import decode_batch, encode_batch, encode_command
from raft.fsm import apply_batch
from raft.fsm_secrets import MAX_VERSIONS, keyring, keys_in_use, version_entry
from raft.state import State

NONCE = b"\1" * 12


def apply(state: State, c: dict[str, Any]) -> dict[str, Any]:
    entry = encode_batch([encode_command({"ts": 1000, **c})])
    return apply_batch(state, decode_batch(entry), state.index + 1)[0]


def put(state: State, name: str, version: int, key_id: str = "k1", ct: bytes = b"ct") -> dict:
    return apply(
        state,
        {
            "op": "secret.put",
            "name": name,
            "version": version,
            "key_id": key_id,
            "nonce": NONCE,
            "ciphertext": ct,
        },
    )


def test_put_creates_versions_with_check_and_set() -> None:
    s = State()
    first = put(s, "db_pass", 1)
    assert first["ok"] and first["created"] and first["secret"]["version"] == 1
    assert "ciphertext" not in str(first)  # results (remembered in snapshots) hold metadata only
    assert keyring(s) == {
        "primary": "k1",
        "keys": {"k1": {"id": "k1", "create_time": 1000, "create_index": 1}},
    }
    assert put(s, "db_pass", 2)["ok"]
    stale = put(s, "db_pass", 2)
    assert stale["status"] == 409 and stale["error"] == "version_conflict"
    unknown = put(s, "db_pass", 3, key_id="k-other")
    assert unknown["status"] == 409 and unknown["error"] == "unknown_key"
    doc = s.table("secrets")["db_pass"]
    assert doc["version"] == 2 and [v["version"] for v in doc["versions"]] == [1, 2]
    assert version_entry(doc, 1)["ciphertext"] == b"ct"


def test_versions_are_capped() -> None:
    s = State()
    for v in range(1, MAX_VERSIONS + 6):
        assert put(s, "x", v)["ok"]
    versions = [e["version"] for e in s.table("secrets")["x"]["versions"]]
    assert len(versions) == MAX_VERSIONS and versions[-1] == MAX_VERSIONS + 5


def test_invalid_puts_are_refused() -> None:
    s = State()
    for fields in (
        {"name": "bad name", "version": 1},
        {"name": "a" * 129, "version": 1},
        {"name": "ok", "version": 0},
        {"name": "ok", "version": True},
        {"name": "ok", "version": 1, "nonce": b"short"},
        {"name": "ok", "version": 1, "ciphertext": "not bytes"},
        {"name": "ok", "version": 1, "ciphertext": b"x" * (70 * 1024)},
    ):
        c = {"op": "secret.put", "key_id": "k1", "nonce": NONCE, "ciphertext": b"ct", **fields}
        assert apply(s, c)["status"] == 400, fields
    assert s.table("secrets") == {}


def test_rotate_reencrypt_prune() -> None:
    s = State()
    put(s, "a", 1)
    put(s, "a", 2)
    put(s, "b", 1)
    r = apply(s, {"op": "keyring.rotate", "key_id": "k2"})
    assert r["ok"] and keyring(s)["primary"] == "k2" and set(keyring(s)["keys"]) == {"k1", "k2"}
    assert apply(s, {"op": "keyring.rotate", "key_id": "k2"})["status"] == 409
    assert apply(s, {"op": "keyring.prune"})["dropped"] == []  # k1 still used
    moved = apply(
        s,
        {
            "op": "secret.reencrypt",
            "name": "a",
            "version": 1,
            "old_key_id": "k1",
            "key_id": "k2",
            "nonce": NONCE,
            "ciphertext": b"new",
        },
    )
    assert moved["changed"]
    again = apply(
        s,
        {
            "op": "secret.reencrypt",
            "name": "a",
            "version": 1,
            "old_key_id": "k1",
            "key_id": "k2",
            "nonce": NONCE,
            "ciphertext": b"newer",
        },
    )
    assert not again["changed"]  # already moved: a stale re-encrypter changes nothing
    assert version_entry(s.table("secrets")["a"], 1)["ciphertext"] == b"new"
    for name, version in (("a", 2), ("b", 1)):
        apply(
            s,
            {
                "op": "secret.reencrypt",
                "name": name,
                "version": version,
                "old_key_id": "k1",
                "key_id": "k2",
                "nonce": NONCE,
                "ciphertext": b"n",
            },
        )
    assert keys_in_use(s) == {"k2": 3}
    assert apply(s, {"op": "keyring.prune"})["dropped"] == ["k1"]
    assert set(keyring(s)["keys"]) == {"k2"}
    # a put under a dropped key is refused; under the primary it works
    assert put(s, "a", 3, key_id="k1")["error"] == "unknown_key"
    assert put(s, "a", 3, key_id="k2")["ok"]


def test_delete() -> None:
    s = State()
    put(s, "a", 1)
    assert apply(s, {"op": "secret.delete", "name": "a"})["ok"]
    assert apply(s, {"op": "secret.delete", "name": "a"})["status"] == 404
    assert put(s, "a", 1)["ok"]  # a deleted name starts again at version 1


SECRET_OPS = ["secret.put", "secret.delete", "secret.reencrypt", "keyring.rotate", "keyring.prune"]
_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=8)
    | st.binary(max_size=16)
)


@settings(max_examples=300, deadline=None)
@given(
    op=st.sampled_from(SECRET_OPS),
    fields=st.dictionaries(
        st.sampled_from(["name", "version", "key_id", "nonce", "ciphertext", "old_key_id", "ts"]),
        _scalar,
        max_size=6,
    ),
)
def test_secret_ops_are_total(op: str, fields: dict[str, Any]) -> None:
    s = State()
    put(s, "a", 1)
    result = apply(s, {"op": op, **fields})
    assert result.get("status", 200) != 500, result
