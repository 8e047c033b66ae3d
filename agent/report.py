"""The report: what changed in this node's allocations, sent to
``POST /v1/allocations/status`` until the cluster takes it.

Apart from the agent's other loops because its rules are its own: changes
are batched after a short debounce (what changes while a report is in
flight leaves together in the next one); a batch is acknowledged to the
supervisor only once the cluster took it, so nothing is lost to a failed
request; a batch the cluster will never take (a 4xx other than auth, not
found, timeout or rate limit) is dropped rather than retried forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from agent.cluster import ClusterClient
from agent.supervisor import Supervisor
from client import ApiClientError

__all__ = ["Reporter"]

log = logging.getLogger("heroctl.agent")


class Reporter:
    """``forgotten(exc)``: whether an error says the cluster does not know
    this node (the agent then registers again); ``backoff(failures)``: the
    agent's pause between retries."""

    def __init__(
        self,
        client: ClusterClient,
        node_id: str,
        registered: asyncio.Event,
        *,
        debounce: float,
        forgotten: Callable[[ApiClientError], bool],
        backoff: Callable[[int], Awaitable[None]],
    ) -> None:
        self.client = client
        self.node_id = node_id
        self.registered = registered
        self.debounce = debounce
        self.forgotten = forgotten
        self.backoff = backoff
        self.supervisor: Supervisor | None = None
        self.wanted = asyncio.Event()  # set: something changed, report it

    async def send(self) -> bool:
        """Send what changed; True when nothing is left to send."""
        sup = self.supervisor
        if sup is None or not self.registered.is_set():
            return False
        updates = sup.pending_updates()
        if not updates:
            return True
        body = {
            "node": self.node_id,
            "updates": [{k: v for k, v in u.items() if k != "_seq"} for u in updates],
        }
        try:
            await self.client.post("/v1/allocations/status", body)
        except ApiClientError as exc:
            if self.forgotten(exc):
                return False
            if 400 <= exc.status < 500 and exc.status not in (401, 403, 404, 408, 429):
                # The cluster will never take this batch: drop it rather than
                # retry forever (the next change is reported afresh).
                log.warning("agent: status update refused, dropped: %s", exc)
                sup.acknowledge(updates)
                return True
            raise
        sup.acknowledge(updates)
        return True

    async def run(self) -> None:
        failures = 0
        while True:
            await self.wanted.wait()
            await asyncio.sleep(self.debounce)
            self.wanted.clear()
            try:
                done = await self.send()
            except ApiClientError as exc:
                failures += 1
                if failures in (1, 5) or failures % 30 == 0:
                    log.warning("agent: reporting allocation status failed: %s", exc)
                await self.backoff(failures)
                self.wanted.set()
                continue
            failures = 0
            if not done:
                await self.backoff(1)
                self.wanted.set()
