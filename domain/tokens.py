"""Credential formats: ACL token secrets (`ht_`), refresh tokens (`rt_`), ids.

Secrets are random (256 bits) and only their sha256 is stored: a hash of a
high-entropy value needs no salt or stretching, and the hash is the lookup key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid

TOKEN_PREFIX = "ht_"
REFRESH_PREFIX = "rt_"
TOKEN_RE = re.compile(r"^ht_[A-Za-z0-9_-]{16,200}$")
_REFRESH_RE = re.compile(r"^rt_([0-9a-f]{32})\.([A-Za-z0-9_-]{16,200})$")


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_accessor_id() -> str:
    return str(uuid.uuid4())


def new_id() -> str:
    return uuid.uuid4().hex


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def is_token_secret(value: str) -> bool:
    return bool(TOKEN_RE.fullmatch(value))


def new_refresh_token(session_id: str) -> str:
    """`rt_<session id>.<random>`: the session id finds the row, the rest proves it."""
    return f"{REFRESH_PREFIX}{session_id}.{secrets.token_urlsafe(32)}"


def refresh_session_id(token: str) -> str | None:
    m = _REFRESH_RE.fullmatch(token)
    return m.group(1) if m else None


def generate_password() -> str:
    return secrets.token_urlsafe(18)
