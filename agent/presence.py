"""The agent's presence in the cluster: registering its node (again, when
the cluster forgot it) and heartbeating, as a part of :class:`agent.agent.Agent`.

A worker-only node registers through its enrollment client (the token it
was given, or its node credential once registered); every later call goes
through the node credential (``agent.agent``). A 404 ``node_not_found``
anywhere means the cluster forgot this node: register again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from agent.node import host_usage
from client import ApiClientError

if TYPE_CHECKING:
    from agent.cluster import ClusterClient
    from agent.config import AgentConfig
    from agent.node import CpuSampler, NodeIdentity

log = logging.getLogger("heroctl.agent")


class Presence:
    """Registration and heartbeats; the attributes are the agent's."""

    config: AgentConfig
    node_id: str
    identity: NodeIdentity | None
    client: ClusterClient
    enroll: ClusterClient
    registered: asyncio.Event
    node: dict[str, Any]
    ttl: float
    _cpu: CpuSampler

    def _path(self, suffix: str = "") -> str:
        return f"/v1/nodes/{quote(self.node_id, safe='')}{suffix}"

    async def _backoff(self, failures: int) -> None:
        cfg = self.config
        await asyncio.sleep(min(cfg.retry_max, cfg.retry_min * (2 ** min(failures, 6))))

    def _forgotten(self, exc: ApiClientError) -> bool:
        """Whether the cluster does not know this node (any more)."""
        if exc.status == 404 and exc.code == "node_not_found":
            if self.registered.is_set():
                log.warning("agent: the cluster does not know this node; registering again")
            self.registered.clear()
            return True
        return False

    # --- register and heartbeat ----------------------------------------------------------

    async def _register(self) -> None:
        assert self.identity is not None
        failures = 0
        while True:
            try:
                node = await self.enroll.post("/v1/nodes/register", self.identity.register_body())
            except ApiClientError as exc:
                level = (
                    logging.WARNING if failures in (0, 5) or failures % 30 == 0 else logging.DEBUG
                )
                log.log(level, "agent: register at %s failed: %s", self.enroll.address, exc)
                failures += 1
                await self._backoff(failures)
                continue
            self.node = node if isinstance(node, dict) else {}
            self.registered.set()
            log.info(
                "agent: registered node %s (%s): status %s",
                self.config.node_name,
                self.node_id,
                self.node.get("status", "?"),
            )
            return

    async def _heartbeat_loop(self) -> None:
        failures = 0
        while True:
            if not self.registered.is_set():
                await self._register()
                failures = 0
            usage = host_usage(
                self.config.data_dir, self.identity.cpu if self.identity else 0, self._cpu
            )
            try:
                answer = await self.client.post(self._path("/heartbeat"), {"usage": usage})
            except ApiClientError as exc:
                if self._forgotten(exc):
                    continue
                failures += 1
                if failures in (1, 5) or failures % 30 == 0:
                    log.warning("agent: heartbeat to %s failed: %s", self.client.address, exc)
                await asyncio.sleep(min(1.0, self.ttl / 6))
                continue
            if failures:
                log.info("agent: heartbeats go through again")
            failures = 0
            if isinstance(answer, dict) and answer.get("ttl_seconds"):
                self.ttl = max(1.0, float(answer["ttl_seconds"]))
            await asyncio.sleep(self.ttl / 3)
