"""The ACL bootstrap from the environment (leader only).

When the servers were started with HEROCTL_BOOTSTRAP_TOKEN, whichever
becomes leader first bootstraps the ACL system with that token (and
HEROCTL_ADMIN_PASSWORD, if given); `--dev` generates both and prints them once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from domain.acl_bootstrap import bootstrap
from domain.crypto import KeyMaterial
from domain.tokens import is_token_secret
from raft.replica import CommandRejected, NoLeader, RaftRefused, Replica

log = logging.getLogger("heroctld.security")

Announce = Callable[[str, str | None], None]


async def bootstrap_from_env(
    replica: Replica,
    keys: KeyMaterial,
    token: str | None,
    password: str | None,
    announce: Announce | None = None,
) -> None:
    if not token:
        return
    if not is_token_secret(token):
        log.error("HEROCTL_BOOTSTRAP_TOKEN must look like ht_<at least 16 of [A-Za-z0-9_-]>")
        return
    while True:
        with replica.read() as view:
            if "bootstrap" in view.acl_meta:
                return
        try:
            result = await bootstrap(replica, keys, token, password)
        except CommandRejected as e:
            if e.code != "already_bootstrapped":
                log.error("bootstrap from environment refused: %s", e.message)
            return
        except (NoLeader, RaftRefused) as e:
            log.info("bootstrap from environment postponed: %s", e)
            await asyncio.sleep(0.1)
            continue
        log.info(
            "ACL bootstrapped from HEROCTL_BOOTSTRAP_TOKEN (accessor %s)", result["accessor_id"]
        )
        if announce is not None:
            announce(token, password)
        return
