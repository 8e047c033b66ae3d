"""The cluster's TLS certificate authority, made once (leader only).

When the replicated state has no CA, the leader makes one (domain.pki), seals
its private key with a key derived from the cluster key and proposes it:
create-only, so if two leaders race the first CA wins and the second is
dropped. Then the controller is done: every server signs its own certificate
from the CA in its state (heroctld.tls), no request travels for it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from domain.pki import CaKeys, fingerprint, new_ca
from raft.replica import CommandRejected, NoLeader, RaftRefused, Replica

log = logging.getLogger("heroctld.tls")


async def ensure_ca(replica: Replica, keys: CaKeys, retry: float = 1.0) -> None:
    """Make the cluster's CA unless it has one; returns once it has."""
    while True:
        with replica.read() as view:
            existing = view.pki.ca()
        if existing is not None:
            return
        ca = new_ca(secrets.token_hex(4))
        try:
            result = await replica.write(
                "pki.ca.create",
                cert=ca.cert_pem,
                key=keys.seal(ca.key_pem),
                fingerprint=fingerprint(ca.cert_pem),
            )
        except (NoLeader, RaftRefused, CommandRejected) as e:
            log.warning("tls: could not store the cluster CA yet: %s", e)
            await asyncio.sleep(retry)
            continue
        if result.get("created"):
            log.info("tls: made the cluster CA %s", result["fingerprint"])
        return
