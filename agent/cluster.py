"""The agent's way to the cluster: the shared :class:`client.api_client.ApiClient`
over a list of servers, with failover and credential refresh.

A worker-only node is given a few server addresses; when one does not
answer (or answers 5xx: no leader, shutting down) the next is tried. The
embedded agent of a server mints its own ``hs_`` credential from the cluster
key; such a credential is only valid for a few minutes, so the token source
is a callable and the client is replaced by a fresh one (with a fresh
credential) every :data:`TOKEN_REFRESH` seconds. The replaced client is
closed once requests in flight on it are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from client import ApiClient, ApiClientError, Params

__all__ = ["ClusterClient", "TOKEN_REFRESH"]

log = logging.getLogger("heroctl.agent")

TOKEN_REFRESH = 45.0  # seconds; server and node credentials are accepted for 120 s
RETRYABLE_STATUS = frozenset({0, 429, 500, 502, 503, 504})


class ClusterClient:
    def __init__(
        self,
        servers: list[str],
        token: str | Callable[[], str] | None,
        *,
        timeout: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        ca_file: str | None = None,
    ) -> None:
        if not servers:
            raise ValueError("no server addresses")
        self.servers = list(servers)
        self._token = token
        self.timeout = timeout
        self.clock = clock
        self.ca_file = ca_file  # https servers are verified against it (the cluster CA)
        self._current = 0
        self._clients: dict[str, ApiClient] = {}
        self._minted = 0.0
        self._retired: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return self.servers[self._current]

    def _token_now(self) -> str | None:
        if callable(self._token):
            return self._token()
        return self._token

    def _client(self, address: str, timeout: float) -> ApiClient:
        if callable(self._token) and self.clock() - self._minted > TOKEN_REFRESH:
            self._minted = self.clock()
            old, self._clients = self._clients, {}
            for client in old.values():
                self._retire(client, max(c.timeout for c in old.values()))
        key = f"{address} {timeout:g}"
        client = self._clients.get(key)
        if client is None:
            client = ApiClient(address, self._token_now(), timeout=timeout, ca_file=self.ca_file)
            self._clients[key] = client
        return client

    def _retire(self, client: ApiClient, linger: float) -> None:
        async def later() -> None:
            await asyncio.sleep(linger + 5)
            await client.close()

        task = asyncio.get_running_loop().create_task(later())
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Params | None = None,
        *,
        timeout: float | None = None,
    ) -> tuple[Any, Mapping[str, str]]:
        """One request, tried once on each server until one answers without
        a retryable error; raises the last :class:`ApiClientError`.
        ``timeout``: for long polls, longer than the default."""
        last: ApiClientError | None = None
        for attempt in range(len(self.servers)):
            address = self.servers[self._current]
            client = self._client(address, timeout or self.timeout)
            try:
                return await client.request(method, path, body, params)
            except ApiClientError as exc:
                last = exc
            if last.status not in RETRYABLE_STATUS:
                raise last
            if len(self.servers) > 1:
                self._current = (self._current + 1) % len(self.servers)
                log.debug("agent: %s failed (%s), trying %s", address, last, self.address)
            if attempt == len(self.servers) - 1:
                break
        assert last is not None
        raise last

    async def get(self, path: str, params: Params | None = None, **kw: Any) -> Any:
        return (await self.request("GET", path, None, params, **kw))[0]

    async def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return (await self.request("POST", path, body, **kw))[0]

    async def close(self) -> None:
        for task in list(self._retired):
            task.cancel()
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        self._clients.clear()
