"""What a webhook delivery is, independent of who sends it: pure functions.

- The secret: sealed with AES-256-GCM under a key derived from the cluster key
  (label `webhook-secrets`), the webhook id as associated data, before it
  enters the raft log; opened only by the leader that delivers.
- The request: a JSON body `{"id", "event", "timestamp", "index", "data"}`
  (id = the delivery id, stable across retries of one event to one webhook),
  and the headers `X-HeroCtl-Signature: sha256=<hex HMAC-SHA256(secret, raw
  body)>` (the API contract's), `X-HeroCtl-Delivery`, `X-HeroCtl-Timestamp`
  (unix seconds of this attempt) and `X-HeroCtl-Event`. The contract's
  signature covers the body only, so a captured request could be replayed
  with a fresh timestamp; the Standard Webhooks headers (standardwebhooks.com)
  sign the delivery id and the timestamp with it: `webhook-id` (the delivery
  id), `webhook-timestamp` (the same seconds) and `webhook-signature: v1,<base64
  HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, where the key is the secret as
  that spec serializes it (`whsec_<base64>`: the decoded bytes) or, for any
  other secret, its own bytes, as for the contract's signature.
- The retry schedule: exponential backoff from 1 s, capped (5 min), for up to
  24 h from the first attempt.
- The answer: its status decides; at most RESPONSE_CAP bytes of its body are
  read (a receiver cannot make the leader read, or hold, more).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from raft.fsm_webhooks import delivery_id
from raft.keys import derive_key

BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
MAX_AGE = 24 * 3600.0  # seconds from the first attempt before an event is given up
TIMEOUT = 10.0  # seconds for one attempt (connect + answer)
RESPONSE_CAP = 4096  # bytes of a receiver's answer read at most
STANDARD_PREFIX = "whsec_"  # Standard Webhooks' serialization of a secret: whsec_<base64>
USER_AGENT = "HeroCtl-Webhooks/1"


class SecretError(Exception):
    """A webhook secret did not open (another cluster key, or tampered)."""


def _aad(webhook_id: str) -> bytes:
    return f"heroctl-webhook\x00{webhook_id}".encode()


class WebhookSecrets:
    def __init__(self, cluster_key: str) -> None:
        self._aead = AESGCM(derive_key(cluster_key, "webhook-secrets"))

    def seal(self, webhook_id: str, secret: str) -> dict[str, bytes]:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, secret.encode("utf-8"), _aad(webhook_id))
        return {"nonce": nonce, "ciphertext": ct}

    def open(self, webhook_id: str, sealed: dict[str, Any]) -> bytes:
        try:
            return self._aead.decrypt(sealed["nonce"], sealed["ciphertext"], _aad(webhook_id))
        except (InvalidTag, KeyError, TypeError, ValueError):
            raise SecretError(
                f"the secret of webhook '{webhook_id}' does not decrypt with this cluster key"
            ) from None


def rfc3339_ms(ms: int) -> str:
    seconds, rest = divmod(int(ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest:03d}Z"


def body(webhook_id: str, event: dict[str, Any]) -> tuple[str, bytes]:
    """(delivery id, raw JSON body) for one event; the same bytes on every retry."""
    did = delivery_id(webhook_id, event["seq"])
    doc = {
        "id": did,
        "event": event["type"],
        "timestamp": rfc3339_ms(event["ts"]),
        "index": event["index"],
        "data": event["data"],
    }
    return did, json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: bytes, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()


def standard_key(secret: bytes) -> bytes | None:
    """The Standard Webhooks HMAC key of a secret: `whsec_<base64>` decoded, any
    other secret's own bytes; None for a `whsec_` secret that is not base64 of
    24-64 bytes (that spec's bounds)."""
    if not secret.startswith(STANDARD_PREFIX.encode()):
        return secret
    encoded = secret[len(STANDARD_PREFIX) :]
    try:
        key = base64.b64decode(encoded + b"=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if 24 <= len(key) <= 64 else None


def standard_signature(secret: bytes, did: str, ts: int, raw: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` over `<id>.<timestamp>.<body>` (Standard Webhooks)."""
    key = standard_key(secret)
    if key is None:  # refused when the webhook was created; never sign with a guess
        raise SecretError(f"the secret is not a valid {STANDARD_PREFIX}<base64> secret")
    mac = hmac.new(key, f"{did}.{ts}.".encode() + raw, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret: bytes, raw: bytes, header: str | None) -> bool:
    """What a receiver does (documented in the README; used by the tests)."""
    return header is not None and hmac.compare_digest(signature(secret, raw), header)


def headers(
    secret: bytes, raw: bytes, did: str, event_type: str, now: float, redelivery: bool = False
) -> dict[str, str]:
    ts = int(now)
    out = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-HeroCtl-Event": event_type,
        "X-HeroCtl-Delivery": did,
        "X-HeroCtl-Timestamp": str(ts),
        "X-HeroCtl-Signature": signature(secret, raw),
        "webhook-id": did,
        "webhook-timestamp": str(ts),
        "webhook-signature": standard_signature(secret, did, ts, raw),
    }
    if redelivery:
        out["X-HeroCtl-Redelivery"] = "true"
    return out


def backoff(attempts: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: 1, 2, 4, ... cap."""
    return min(cap, base * 2 ** max(0, min(attempts - 1, 40)))


def gives_up(first_attempt_ms: int, now_ms: int, max_age: float = MAX_AGE) -> bool:
    return now_ms - first_attempt_ms >= max_age * 1000
