"""Keys derived from the cluster key (HKDF-SHA256, one label per use).

The cluster key never leaves the servers' configuration; everything that
needs a key (raft transport, secrets at rest, JWT signing-key wrapping)
derives its own from it, so a data dir copied without the key reveals nothing.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_KEY_CHARS = 16


class ClusterKeyError(ValueError):
    pass


def generate_cluster_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def check_cluster_key(key: str) -> str:
    key = key.strip()
    if len(key) < MIN_KEY_CHARS:
        raise ClusterKeyError(
            f"cluster key must be at least {MIN_KEY_CHARS} characters (use `heroctld keygen`)"
        )
    return key


def derive_key(cluster_key: str, purpose: str, length: int = 32) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=b"heroctl-cluster-key-v1",
        info=purpose.encode(),
    ).derive(check_cluster_key(cluster_key).encode())
