"""The refresh grace window: a second refresh of the same token gets the same pair.

Two clients sharing one login (two `heroctl` commands started together) may
present the same refresh token at once. Reuse detection used to end the
session for the second one. Now the rotation that wins records, in the
replicated session row, the hash of the token it replaced, when its window
closes (`[auth] refresh_grace`, ≈10 s) and the new refresh token *sealed*;
the same old token presented again before then, on any server, is answered
by the FSM with that record, and the server that took it opens the token and
signs the JWT again from the same claims (HS256 is deterministic: the same
bytes). After the window, the old token is a replay and ends the session.

Why a replicated, sealed record rather than a cache of the last result in
memory: any server may take the second refresh, and the FSM alone decides,
at one raft index, between "grace" and "replay: end the session". A cache in
the memory of the server that rotated (or of the leader) is absent on the
others, so the second refresh would still end the session there, or it would
need forwarding to that one server and be lost with a leader change.

Why sealing is safe: the refresh token is the only secret of the pair (the
JWT is rebuilt from what the row already holds), and it enters the raft log
and snapshots as AES-256-GCM ciphertext under a key derived from the cluster
key, bound to the session id and the new `jti`. The cluster key already
unwraps the JWT signing key, so whoever could open the record could mint any
JWT anyway: it adds no exposure. Plaintext tokens never enter the log.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from raft.keys import derive_key


class SealError(Exception):
    """A sealed refresh token did not open (another cluster key, or tampered)."""


def _aad(session_id: str, jti: str) -> bytes:
    return f"heroctl-refresh-grace\x00{session_id}\x00{jti}".encode()


class RefreshSeal:
    def __init__(self, cluster_key: str) -> None:
        self._aead = AESGCM(derive_key(cluster_key, "session-refresh-grace"))

    def seal(self, session_id: str, jti: str, refresh_token: str) -> dict[str, bytes]:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, refresh_token.encode(), _aad(session_id, jti))
        return {"nonce": nonce, "ciphertext": ct}

    def open(self, session_id: str, jti: str, sealed: dict[str, bytes]) -> str:
        try:
            plain = self._aead.decrypt(sealed["nonce"], sealed["ciphertext"], _aad(session_id, jti))
        except (InvalidTag, KeyError, TypeError, ValueError):
            raise SealError(
                "the refreshed session's token does not decrypt with this server's cluster key"
            ) from None
        return plain.decode()
