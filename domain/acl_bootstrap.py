"""The one-time ACL bootstrap: a management token, the admin user and the
JWT signing key, proposed together.

Used by `POST /v1/acl/bootstrap` and, when the servers start with
HEROCTL_BOOTSTRAP_TOKEN, by the leader's bootstrap controller. Only hashes
of the token and the password, and the signing key sealed under the cluster
key, reach the raft log.
"""

from __future__ import annotations

import asyncio
from typing import Any

from domain.crypto import KeyMaterial
from domain.passwords import hash_password
from domain.tokens import hash_secret, new_accessor_id
from raft.replica import Replica

ADMIN_USER = "admin"


async def bootstrap(
    replica: Replica, keys: KeyMaterial, token_secret: str, password: str | None
) -> dict[str, Any]:
    """Propose the one-time bootstrap: management token, admin user, signing key."""
    loop = asyncio.get_running_loop()
    password_hash = await loop.run_in_executor(None, hash_password, password) if password else None
    accessor = new_accessor_id()
    return await replica.write(
        "acl.bootstrap",
        token={"accessor_id": accessor, "secret_hash": hash_secret(token_secret)},
        user={"username": ADMIN_USER, "password_hash": password_hash},
        jwt_key=keys.new_wrapped_jwt_key(),
    )
