"""The servers' credentials for a worker-only node's agent API, and the
sealing of node secrets for the replicated state (pure; clock injected)."""

from __future__ import annotations

import pytest

from domain.node_credentials import (
    NODE_TOKEN_WINDOW,
    NodeSecretError,
    NodeSecrets,
    check_node_secret,
    new_node_secret,
    node_token,
    verify_node_token,
)
from raft.keys import generate_cluster_key

NODE = "a" * 32
NOW = 1_800_000_000.0


def test_a_minted_credential_verifies_and_names_the_server() -> None:
    secret = new_node_secret()
    token = node_token(secret, NODE, "server-2", now=NOW)
    assert token.startswith(f"hn_server-2.{int(NOW)}.")
    assert verify_node_token(secret, NODE, token, now=NOW) == ("server-2", "")
    # a server name with dots still parses (the time and mac are the last two parts)
    dotted = node_token(secret, NODE, "s.example.com", now=NOW)
    assert verify_node_token(secret, NODE, dotted, now=NOW + 5)[0] == "s.example.com"


@pytest.mark.parametrize("skew", [NODE_TOKEN_WINDOW, -NODE_TOKEN_WINDOW])
def test_within_the_window_either_side(skew: float) -> None:
    secret = new_node_secret()
    token = node_token(secret, NODE, "server-1", now=NOW)
    assert verify_node_token(secret, NODE, token, now=NOW + skew)[0] == "server-1"


@pytest.mark.parametrize("skew", [NODE_TOKEN_WINDOW + 1, -NODE_TOKEN_WINDOW - 1, 86400])
def test_expired_or_from_the_future_is_refused(skew: float) -> None:
    secret = new_node_secret()
    token = node_token(secret, NODE, "server-1", now=NOW)
    server, why = verify_node_token(secret, NODE, token, now=NOW + skew)
    assert server is None and "expired" in why


def test_forged_foreign_and_malformed_credentials_are_refused() -> None:
    secret = new_node_secret()
    good = node_token(secret, NODE, "server-1", now=NOW)
    name, ts, mac = good[3:].rsplit(".", 2)
    forged = [
        node_token(new_node_secret(), NODE, "server-1", now=NOW),  # another secret
        node_token(secret, "b" * 32, "server-1", now=NOW),  # made for another node
        f"hn_server-2.{ts}.{mac}",  # another server's name on this mac
        f"hn_{name}.{int(ts) + 1}.{mac}",  # a moved time
        f"hn_{name}.{ts}.{'0' * 64}",
        f"hn_{name}.{ts}.{mac[:-1]}",
        f"hn_.{ts}.{mac}",
    ]
    for token in forged:
        server, why = verify_node_token(secret, NODE, token, now=NOW)
        assert server is None and why, token
    for token in ["", "hn_", "hn_x", "hn_a.b.c", "hs_server-1.1.abc", "ht_" + "x" * 40, good[1:]]:
        server, why = verify_node_token(secret, NODE, token, now=NOW)
        assert server is None and why, token


def test_new_secrets_are_random_and_checked() -> None:
    a, b = new_node_secret(), new_node_secret()
    assert a != b and len(a) == 64 and check_node_secret(a) == a
    for bad in [None, 42, "short", "x" * 257, "with space " * 4, "é" * 40, "tab\t" * 10]:
        assert check_node_secret(bad) is None, bad


def test_sealed_secret_opens_only_with_the_cluster_key_and_node() -> None:
    key = generate_cluster_key()
    box = NodeSecrets(key)
    secret = new_node_secret()
    sealed = box.seal(NODE, secret)
    assert set(sealed) == {"nonce", "ciphertext"}
    assert secret.encode() not in sealed["ciphertext"]
    assert box.seal(NODE, secret)["ciphertext"] != sealed["ciphertext"]  # a fresh nonce each time
    assert NodeSecrets(key).open(NODE, sealed) == secret
    assert box.open(NODE, sealed) == secret  # cached the second time
    with pytest.raises(NodeSecretError):
        NodeSecrets(generate_cluster_key()).open(NODE, sealed)  # another cluster
    with pytest.raises(NodeSecretError):
        NodeSecrets(key).open("b" * 32, sealed)  # moved to another node
    tampered = dict(
        sealed, ciphertext=bytes([sealed["ciphertext"][0] ^ 1]) + sealed["ciphertext"][1:]
    )
    with pytest.raises(NodeSecretError):
        NodeSecrets(key).open(NODE, tampered)
    for broken in [None, {}, {"nonce": b"x"}, "text"]:
        with pytest.raises(NodeSecretError):
            box.open(NODE, broken)
