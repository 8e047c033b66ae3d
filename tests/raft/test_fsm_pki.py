"""raft.fsm_pki: the cluster CA, create-only, first wins, only sealed keys."""

from __future__ import annotations

from raft.fsm import apply_batch
from raft.state import State
from tests.raft.event_log import cmd

CERT = "-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----\n"
SEALED = {"nonce": b"n" * 12, "ciphertext": b"c" * 64}


def test_the_first_ca_wins() -> None:
    state = State()
    first = cmd("pki.ca.create", cert=CERT, key=SEALED, fingerprint="sha256:aa")
    second = cmd("pki.ca.create", cert=CERT + " ", key=SEALED, fingerprint="sha256:bb")
    r1, r2 = apply_batch(state, [first, second], 2)
    assert (r1["ok"], r1["created"], r1["fingerprint"]) == (True, True, "sha256:aa")
    assert (r2["ok"], r2["created"], r2["fingerprint"]) == (True, False, "sha256:aa")
    row = state.table("pki")["ca"]
    assert row["cert"] == CERT and row["key"] == SEALED and row["create_index"] == 2
    assert state.table_index["pki"] == 2


def test_a_ca_without_a_sealed_key_is_refused() -> None:
    state = State()
    bad = [
        cmd("pki.ca.create", cert="not a pem", key=SEALED, fingerprint="sha256:aa"),
        cmd("pki.ca.create", cert=CERT, key="-----BEGIN PRIVATE KEY-----", fingerprint="sha256:a"),
        cmd(
            "pki.ca.create",
            cert=CERT,
            key={"nonce": b"short", "ciphertext": b"c"},
            fingerprint="sha256:a",
        ),
        cmd("pki.ca.create", cert=CERT, key=SEALED),
    ]
    for result in apply_batch(state, bad, 2):
        assert result["ok"] is False and result["status"] == 400
    assert state.table("pki") == {}
