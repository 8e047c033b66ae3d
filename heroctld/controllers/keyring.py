"""Re-encryption after a keyring rotation (leader only).

Moves every secret version that is not under the keyring's primary key to
it (after `keyring/rotate`), then prunes the keys nothing uses any more.
Decryption and sealing happen here, on a server that holds the cluster key;
only ciphertext is proposed.
"""

from __future__ import annotations

import asyncio
import logging

from domain.crypto import DecryptError, KeyMaterial
from raft.replica import CommandRejected, NoLeader, RaftRefused, Replica

log = logging.getLogger("heroctld.security")

REENCRYPT_CHUNK = 64
WATCHED = ("keyring", "secrets")


async def reencrypt_once(replica: Replica, keys: KeyMaterial) -> bool:
    """One pass; True when every version is under the primary and unused keys are gone."""
    with replica.read() as view:
        ring = view.secrets.keyring()
        if ring is None or len(ring["keys"]) == 1:
            return True  # one key: every stored version uses it (puts under others fail)
        primary = ring["primary"]
        todo = [
            (doc["name"], entry)
            for doc in view.secrets.values()
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


async def reencrypt_loop(replica: Replica, keys: KeyMaterial, wait: float = 30.0) -> None:
    """A pass whenever the keyring or the secrets change (and once on taking the lead)."""
    index = 0
    while True:
        mark = max(replica.table_index(t) for t in WATCHED)
        try:
            if not await reencrypt_once(replica, keys):
                continue  # re-encrypted some: the next pass checks and prunes
        except (NoLeader, RaftRefused, CommandRejected) as e:
            log.info("keyring: re-encryption postponed: %s", e)
            await asyncio.sleep(0.5)
            continue
        except Exception:  # do not spin on a bug; the next change retries
            log.exception("keyring: re-encryption failed")
        index = await replica.wait_for_change(WATCHED, max(index, mark), wait)
