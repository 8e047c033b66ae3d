"""Encryption at rest, with keys derived from the cluster key.

Secret values: AES-256-GCM under `derive_key(cluster_key, "secrets-at-rest/<key id>")`,
a fresh 96-bit nonce per seal, and the secret's name and version as associated
data, so a ciphertext moved to another name or version does not open. The
JWT signing key is wrapped the same way under its own derived key. A data dir
without the cluster key holds nothing that decrypts.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from raft.keys import derive_key

NONCE_BYTES = 12
JWT_KEY_BYTES = 64
SERVER_TOKEN_PREFIX = "hs_"
SERVER_TOKEN_WINDOW = 120  # seconds either side: short-lived
JOIN_AUDIENCE = "join"  # a joining server's credential: valid on any server, for joining only


class DecryptError(Exception):
    """A ciphertext did not open: another cluster key, or tampered data."""


def new_key_id() -> str:
    return "k" + secrets.token_hex(6)


def _aad(name: str, version: int) -> bytes:
    return f"heroctl-secret\x00{name}\x00{version}".encode()


class KeyMaterial:
    """Every key this server derives from the cluster key, cached per key id."""

    def __init__(self, cluster_key: str) -> None:
        self._cluster_key = cluster_key
        self._secret_keys: dict[str, AESGCM] = {}
        self._wrap = AESGCM(derive_key(cluster_key, "jwt-signing-key-wrap"))
        self._server_mac_key = derive_key(cluster_key, "server-api-auth")
        self._private_keys = AESGCM(derive_key(cluster_key, "ingress-private-keys"))

    def _secret_aead(self, key_id: str) -> AESGCM:
        aead = self._secret_keys.get(key_id)
        if aead is None:
            aead = AESGCM(derive_key(self._cluster_key, f"secrets-at-rest/{key_id}"))
            self._secret_keys[key_id] = aead
        return aead

    # --- secrets -----------------------------------------------------------
    def seal_secret(
        self, key_id: str, name: str, version: int, plaintext: bytes
    ) -> tuple[bytes, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        return nonce, self._secret_aead(key_id).encrypt(nonce, plaintext, _aad(name, version))

    def open_secret(
        self, key_id: str, name: str, version: int, nonce: bytes, ciphertext: bytes
    ) -> bytes:
        try:
            return self._secret_aead(key_id).decrypt(nonce, ciphertext, _aad(name, version))
        except (InvalidTag, ValueError):
            raise DecryptError(
                f"secret '{name}' version {version} does not decrypt with key {key_id}: "
                "this server's cluster key is not the one that encrypted it"
            ) from None

    # --- the JWT signing key ---------------------------------------------------
    def new_wrapped_jwt_key(self) -> dict[str, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        raw = secrets.token_bytes(JWT_KEY_BYTES)
        return {"nonce": nonce, "ciphertext": self._wrap.encrypt(nonce, raw, b"heroctl-jwt-key")}

    def unwrap_jwt_key(self, wrapped: dict[str, bytes]) -> bytes:
        try:
            return self._wrap.decrypt(wrapped["nonce"], wrapped["ciphertext"], b"heroctl-jwt-key")
        except (InvalidTag, ValueError, KeyError, TypeError):
            raise DecryptError(
                "the JWT signing key does not decrypt: this server's cluster key is not the "
                "one the cluster was bootstrapped with"
            ) from None

    # --- private keys of the ingress (certificates, the ACME account) ---------------
    def seal_private_key(self, label: str, pem: str) -> dict[str, bytes]:
        """`label` ("cert:<host>", "acme-account") is bound in: a sealed key
        moved to another row does not open."""
        nonce = os.urandom(NONCE_BYTES)
        aad = f"heroctl-private-key\x00{label}".encode()
        return {"nonce": nonce, "ciphertext": self._private_keys.encrypt(nonce, pem.encode(), aad)}

    def open_private_key(self, label: str, sealed: dict[str, bytes]) -> str:
        aad = f"heroctl-private-key\x00{label}".encode()
        try:
            return self._private_keys.decrypt(sealed["nonce"], sealed["ciphertext"], aad).decode()
        except (InvalidTag, ValueError, KeyError, TypeError):
            raise DecryptError(
                f"the private key of {label} does not decrypt: this server's cluster key is "
                "not the one that sealed it"
            ) from None

    # --- server-to-server credentials -------------------------------------------
    def _server_mac(self, name: str, ts: str, audience: str) -> str:
        message = f"{name}\x00{ts}\x00{audience}".encode()
        return hmac.new(self._server_mac_key, message, hashlib.sha256).hexdigest()

    def server_token(self, name: str, audience: str, now: float | None = None) -> str:
        """`hs_<name>.<unix time>.<hmac>`: proves the holder has the cluster key.
        The HMAC covers `audience`, the name of the server it is sent to (or
        JOIN_AUDIENCE), so it is worth nothing on any other server."""
        ts = str(int(time.time() if now is None else now))
        return f"{SERVER_TOKEN_PREFIX}{name}.{ts}.{self._server_mac(name, ts, audience)}"

    def verify_server_token(
        self, token: str, audiences: tuple[str, ...], now: float | None = None
    ) -> tuple[str, str] | None:
        """(server name, the audience it was made for) if the token is genuine,
        fresh and made for one of `audiences`, else None."""
        try:
            name, ts, mac = token[len(SERVER_TOKEN_PREFIX) :].rsplit(".", 2)
            stamp = int(ts)
        except ValueError:
            return None
        now = time.time() if now is None else now
        if not name or abs(now - stamp) > SERVER_TOKEN_WINDOW:
            return None
        for audience in audiences:
            if hmac.compare_digest(self._server_mac(name, ts, audience), mac):
                return name, audience
        return None
