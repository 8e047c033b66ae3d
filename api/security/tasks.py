"""Background work of the security layer, started with the app (cleanup_ctx).

- `bootstrap_from_env`: when the servers were started with
  HEROCTL_BOOTSTRAP_TOKEN, whichever becomes leader first bootstraps the ACL
  system with that token (and HEROCTL_ADMIN_PASSWORD, if given).
- `reencrypt_loop`: on the leader, moves every secret version that is not
  under the keyring's primary key to it (after `keyring/rotate`), then prunes
  the keys nothing uses any more. Decryption and sealing happen here, on a
  server that holds the cluster key; only ciphertext is proposed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from api.context import REPLICA
from api.security.passwords import hash_password
from api.security.runtime import SECURITY, Security
from api.security.tokens import hash_secret, is_token_secret, new_accessor_id
from domain.crypto import DecryptError, KeyMaterial
from raft.bridge import NoLeader, RaftRefused
from raft.fsm_secrets import keyring
from raft.replica import CommandRejected, Replica

log = logging.getLogger("heroctld.security")

ADMIN_USER = "admin"
REENCRYPT_CHUNK = 64


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


async def bootstrap_from_env(replica: Replica, sec: Security) -> None:
    token = sec.settings.bootstrap_token
    if not token:
        return
    if not is_token_secret(token):
        log.error("HEROCTL_BOOTSTRAP_TOKEN must look like ht_<at least 16 of [A-Za-z0-9_-]>")
        return
    while not sec.auth.bootstrapped():
        if replica.node.is_leader:
            try:
                result = await bootstrap(replica, sec.keys, token, sec.settings.admin_password)
            except CommandRejected as e:
                if e.code == "already_bootstrapped":
                    return
                log.error("bootstrap from environment refused: %s", e.message)
                return
            except (NoLeader, RaftRefused) as e:
                log.info("bootstrap from environment postponed: %s", e)
            else:
                log.info(
                    "ACL bootstrapped from HEROCTL_BOOTSTRAP_TOKEN (accessor %s)",
                    result["accessor_id"],
                )
                if sec.settings.announce_bootstrap is not None:
                    sec.settings.announce_bootstrap(token, sec.settings.admin_password)
                return
        await asyncio.sleep(0.1)


async def reencrypt_once(replica: Replica, keys: KeyMaterial) -> bool:
    """One pass; True when every version is under the primary and unused keys are gone."""
    with replica.state.read() as s:
        ring = keyring(s)
        if ring is None or len(ring["keys"]) == 1:
            return True  # one key: every stored version uses it (puts under others fail)
        primary = ring["primary"]
        todo = [
            (doc["name"], entry)
            for doc in s.table("secrets").values()
            for entry in doc["versions"]
            if entry["key_id"] != primary
        ]
    failures = 0
    for start in range(0, len(todo), REENCRYPT_CHUNK):
        writes = []
        for name, entry in todo[start : start + REENCRYPT_CHUNK]:
            try:
                plain = keys.open_secret(
                    entry["key_id"], name, entry["version"], entry["nonce"], entry["ciphertext"]
                )
            except DecryptError as e:
                failures += 1
                log.error("keyring: cannot re-encrypt: %s", e)
                continue
            nonce, ct = keys.seal_secret(primary, name, entry["version"], plain)
            writes.append(
                replica.write(
                    "secret.reencrypt",
                    name=name,
                    version=entry["version"],
                    old_key_id=entry["key_id"],
                    key_id=primary,
                    nonce=nonce,
                    ciphertext=ct,
                )
            )
        await asyncio.gather(*writes)
    if todo:
        log.info("keyring: re-encrypted %d secret versions under %s", len(todo) - failures, primary)
    if not failures:
        result = await replica.write("keyring.prune")
        if result["dropped"]:
            log.info("keyring: dropped unused keys %s", ", ".join(result["dropped"]))
    return not todo or failures > 0


async def reencrypt_loop(replica: Replica, keys: KeyMaterial, period: float = 0.5) -> None:
    done_at: tuple[int, int] | None = None
    while True:
        await asyncio.sleep(period)
        if not replica.node.is_leader:
            done_at = None
            continue
        mark = (replica.table_index("keyring"), replica.table_index("secrets"))
        if mark == done_at:
            continue
        try:
            if await reencrypt_once(replica, keys):
                done_at = mark
        except (NoLeader, RaftRefused, CommandRejected) as e:
            log.info("keyring: re-encryption postponed: %s", e)
        except Exception:
            log.exception("keyring: re-encryption failed")
            done_at = mark  # do not spin on a bug; the next change retries


async def security_tasks_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: run the background tasks for the app's lifetime."""
    replica, sec = app[REPLICA], app[SECURITY]
    tasks = [
        asyncio.create_task(bootstrap_from_env(replica, sec), name="acl-bootstrap"),
        asyncio.create_task(reencrypt_loop(replica, sec.keys), name="keyring-reencrypt"),
    ]
    yield
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
