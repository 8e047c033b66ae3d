"""How servers prove themselves to a worker-only node's agent API.

A worker-only node (``heroctld agent``) holds no cluster key, so it cannot
check the servers' ``hs_`` credential. Instead it generates a random *node
secret* once (kept 0600 in its data dir, like a key file) and sends it when
it registers. The server that takes the registration seals it (AES-256-GCM
under a key derived from the cluster key, the node id as associated data)
*before* proposing it, so the raft log, snapshots and backups only hold
ciphertext, and no API answer contains it.

To call the node, a server opens the secret and presents a short-lived
credential ``hn_<server>.<unix time>.<hmac>``: HMAC-SHA256 under the node
secret of the node id, the server's name and the time. The node checks it
with its own copy of the secret: only a holder of the cluster key (a
server) or the node itself can make one, one node's credential is worth
nothing on another, and a copied one expires after ``NODE_TOKEN_WINDOW``
seconds (either side, for clock skew).

The other way round, a worker-only node proves itself to the servers with
``nn_<node id>.<unix time>.<hmac>``: HMAC-SHA256 under its node secret of
its id and the time. A server opens the sealed secret of that node id and
checks it, so a node credential speaks for that one node only. Who may
register a node id again is decided by its *owner*: ``server:<name>`` for
the embedded agent of a server, ``secret:<fingerprint>`` for a worker-only
node (an HMAC of the secret under a key derived from the cluster key, so the
replicated state holds nothing a secret could be guessed from offline).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from raft.keys import derive_key

__all__ = [
    "NODE_CREDENTIAL_PREFIX",
    "NODE_TOKEN_PREFIX",
    "NODE_TOKEN_WINDOW",
    "NodeSecretError",
    "NodeSecrets",
    "check_node_secret",
    "new_node_secret",
    "node_credential",
    "node_token",
    "parse_node_credential",
    "verify_node_credential",
    "verify_node_token",
]

NODE_TOKEN_PREFIX = "hn_"  # a server -> a worker-only node's agent API
NODE_CREDENTIAL_PREFIX = "nn_"  # a worker-only node -> the servers' API
NODE_TOKEN_WINDOW = 120  # seconds either side of the node's clock
NODE_SECRET_BYTES = 32
_SECRET_MIN, _SECRET_MAX = 32, 256  # characters a registered secret may have


class NodeSecretError(Exception):
    """A sealed node secret did not open (another cluster key, tampered, moved)."""


def new_node_secret() -> str:
    """A fresh node secret: 64 hex characters (256 random bits)."""
    return secrets.token_hex(NODE_SECRET_BYTES)


def check_node_secret(value: Any) -> str | None:
    """``value`` if it can be a node secret (printable, 32 to 256 characters), else None."""
    if not isinstance(value, str) or not _SECRET_MIN <= len(value) <= _SECRET_MAX:
        return None
    return value if value.isascii() and value.isprintable() and " " not in value else None


def _mac(secret: str, node_id: str, server: str, ts: str) -> str:
    message = f"heroctl-node-api\x00{node_id}\x00{server}\x00{ts}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def node_token(secret: str, node_id: str, server: str, now: float | None = None) -> str:
    """The credential a server presents to node ``node_id``."""
    ts = str(int(time.time() if now is None else now))
    return f"{NODE_TOKEN_PREFIX}{server}.{ts}.{_mac(secret, node_id, server, ts)}"


def verify_node_token(
    secret: str, node_id: str, token: str, now: float | None = None
) -> tuple[str | None, str]:
    """(the server's name, "") when ``token`` is genuine and fresh for this
    node; else (None, why) with a reason fit for an error message."""
    if not token.startswith(NODE_TOKEN_PREFIX):
        return None, "not a server credential for this node (hn_...)"
    try:
        server, ts, mac = token[len(NODE_TOKEN_PREFIX) :].rsplit(".", 2)
        stamp = int(ts)
    except ValueError:
        return None, "malformed node credential"
    if not server or not hmac.compare_digest(_mac(secret, node_id, server, ts), mac):
        return None, "invalid node credential"
    now = time.time() if now is None else now
    if abs(now - stamp) > NODE_TOKEN_WINDOW:
        return None, "expired node credential (or the clocks differ by more than 2 minutes)"
    return server, ""


def _node_mac(secret: str, node_id: str, ts: str) -> str:
    message = f"heroctl-node-to-cluster\x00{node_id}\x00{ts}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def node_credential(secret: str, node_id: str, now: float | None = None) -> str:
    """The credential node ``node_id`` presents to the servers."""
    ts = str(int(time.time() if now is None else now))
    return f"{NODE_CREDENTIAL_PREFIX}{node_id}.{ts}.{_node_mac(secret, node_id, ts)}"


def parse_node_credential(token: str) -> tuple[str, str, str] | None:
    """(node id, time, mac) of an ``nn_`` credential, or None when malformed."""
    try:
        node_id, ts, mac = token[len(NODE_CREDENTIAL_PREFIX) :].rsplit(".", 2)
        int(ts)
    except ValueError:
        return None
    return (node_id, ts, mac) if node_id and token.startswith(NODE_CREDENTIAL_PREFIX) else None


def verify_node_credential(
    secret: str, node_id: str, ts: str, mac: str, now: float | None = None
) -> str:
    """ "" when the parsed credential is genuine and fresh, else why not."""
    if not hmac.compare_digest(_node_mac(secret, node_id, ts), mac):
        return "invalid node credential"
    now = time.time() if now is None else now
    if abs(now - int(ts)) > NODE_TOKEN_WINDOW:
        return "expired node credential (or the clocks differ by more than 2 minutes)"
    return ""


def _aad(node_id: str) -> bytes:
    return f"heroctl-node-secret\x00{node_id}".encode()


class NodeSecrets:
    """Seals node secrets for the replicated state, and opens them (cached:
    a server opens the same few secrets for every relayed request)."""

    def __init__(self, cluster_key: str) -> None:
        self._aead = AESGCM(derive_key(cluster_key, "node-api-secrets"))
        self._owner_key = derive_key(cluster_key, "node-secret-owner")
        self._opened: dict[tuple[str, bytes], str] = {}

    def owner(self, node_id: str, secret: str) -> str:
        """``secret:<fingerprint>``: who may register ``node_id`` again (the
        holder of this secret), comparable in the FSM without the secret."""
        message = f"{node_id}\x00{secret}".encode()
        return "secret:" + hmac.new(self._owner_key, message, hashlib.sha256).hexdigest()

    def seal(self, node_id: str, secret: str) -> dict[str, bytes]:
        nonce = os.urandom(12)
        return {
            "nonce": nonce,
            "ciphertext": self._aead.encrypt(nonce, secret.encode(), _aad(node_id)),
        }

    def open(self, node_id: str, sealed: Any) -> str:
        try:
            nonce, ciphertext = sealed["nonce"], sealed["ciphertext"]
            key = (node_id, bytes(nonce) + bytes(ciphertext))
        except (KeyError, TypeError, ValueError):
            raise NodeSecretError(f"node '{node_id}' has no usable secret") from None
        found = self._opened.get(key)
        if found is not None:
            return found
        try:
            plain = self._aead.decrypt(nonce, ciphertext, _aad(node_id)).decode()
        except (InvalidTag, ValueError, TypeError):
            raise NodeSecretError(
                f"the secret of node '{node_id}' does not decrypt with this server's cluster key"
            ) from None
        if len(self._opened) >= 4096:
            self._opened.clear()
        self._opened[key] = plain
        return plain
