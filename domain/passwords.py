"""Password hashing with scrypt (cryptography), in a self-describing string.

`scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>`: the parameters travel with
the hash so they can be raised later without breaking stored users. Hashing
costs ~50 ms and 16 MiB by design; callers run it in an executor.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

LOG_N, R, P, LENGTH = 14, 8, 1, 32
MIN_LENGTH = 10
MAX_LENGTH = 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def check_password_policy(password: str) -> str | None:
    """A reason the password is unacceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"password must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"password must be at most {MAX_LENGTH} characters"
    return None


def hash_password(password: str, log_n: int = LOG_N) -> str:
    salt = secrets.token_bytes(16)
    kdf = Scrypt(salt=salt, length=LENGTH, n=2**log_n, r=R, p=P)
    digest = kdf.derive(password.encode("utf-8", "surrogatepass"))
    return f"scrypt${log_n}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        scheme, log_n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        kdf = Scrypt(
            salt=base64.b64decode(salt), length=LENGTH, n=2 ** int(log_n), r=int(r), p=int(p)
        )
        kdf.verify(password.encode("utf-8", "surrogatepass"), base64.b64decode(digest))
        return True
    except (InvalidKey, ValueError):
        return False


# A fixed hash checked when the user does not exist, so that an unknown user
# costs as much time as a wrong password (no user enumeration by timing).
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
