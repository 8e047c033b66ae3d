"""The cluster's one ACME account, kept in the replicated `acme` table.

Its key is made once, by the first leader that needs a certificate, sealed
under the cluster key (label ``acme-account``) and proposed with
``only_if_absent``: if two leaders race, the first account stays and the
second leader adopts it. Every later leader opens the stored key and
registers with it again, which the CA answers with the same account (RFC
8555 §7.3.1), so an account is never made twice for one directory. A new
``[acme] directory`` makes a new account (the stored one is for another CA).

Nothing here talks to the CA before an order needs it: a cluster without
ACME hosts never contacts Let's Encrypt.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from domain.crypto import DecryptError, KeyMaterial
from heroctld.controllers.acme import AcmeClient, AcmeError, AcmeSettings
from raft.replica import Replica

log = logging.getLogger("heroctld.certificates")

ACCOUNT_KEY_LABEL = "acme-account"


class AcmeAccount:
    """Hands out the one :class:`AcmeClient` of this leader, registering the account lazily."""

    def __init__(self, replica: Replica, keys: KeyMaterial, settings: AcmeSettings) -> None:
        self.replica = replica
        self.keys = keys
        self.settings = settings
        self._client: AcmeClient | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> AcmeClient:
        """The client, its account registered (or found again); AcmeError if the CA says no."""
        async with self._lock:
            if self._client is None:
                self._client = await self._stored_or_new()
            return self._client

    async def _stored_or_new(self) -> AcmeClient:
        for _ in range(3):  # a lost race: adopt the winner's account (once is enough)
            with self.replica.read() as view:
                stored = view.acme.account()
            if stored is not None and stored.get("directory") == self.settings.directory:
                return await self._adopt(stored)
            client = AcmeClient(self.settings)
            url = await self._registered(client)
            try:
                result = await self.replica.write(
                    "acme.account.put",
                    key=self.keys.seal_private_key(ACCOUNT_KEY_LABEL, client.account_key_pem),
                    url=url,
                    directory=self.settings.directory,
                    only_if_absent=True,
                )
            except BaseException:
                await client.close()
                raise
            if result.get("changed"):
                log.info("made the ACME account %s at %s", url, self.settings.directory)
                return client
            await client.close()  # another leader stored its account first
        raise AcmeError("the ACME account in the replicated state keeps changing")

    async def _adopt(self, stored: dict[str, Any]) -> AcmeClient:
        try:
            key_pem = self.keys.open_private_key(ACCOUNT_KEY_LABEL, stored["key"])
        except DecryptError:
            raise AcmeError(
                "the stored ACME account key does not open with this cluster key"
            ) from None
        client = AcmeClient(self.settings, account_key_pem=key_pem)
        url = await self._registered(client)
        if url != stored.get("url"):  # the CA lost it and made it again: keep the new URL
            log.warning("the ACME account's URL is now %s (was %s)", url, stored.get("url"))
            try:
                await self.replica.write(
                    "acme.account.put",
                    key=stored["key"],
                    url=url,
                    directory=self.settings.directory,
                )
            except BaseException:
                await client.close()
                raise
        return client

    @staticmethod
    async def _registered(client: AcmeClient) -> str:
        try:
            return await client.ensure_account()
        except BaseException:
            await client.close()
            raise

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
