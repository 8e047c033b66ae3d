"""The leader's http-01 publisher: challenges go into the replicated state, every node serves them.

An ACME validator may reach any node (DNS names all of them), so an answer
must be on every node's ingress before the CA is told to look. The
publisher proposes `acme.challenge.put` (every node's ingress reads the
`acme` table through `GET /v1/nodes/:id/ingress`), then polls each ready
node that advertises an ingress (`node["ingress"]`: `enabled`,
`http_port`) at `http://<address>:<http_port>/.well-known/acme-challenge/<token>`
with the validator's `Host`, until each answers the key authorization or
``publish_wait`` passes. A node that never confirms does not stop the order:
the validator has the last word, and its error says what it found.

The controller orders nothing while no node advertises an HTTP ingress (no
validator could succeed), so there is normally something to poll; if the
last such node went away meanwhile, the publisher goes on at once.

Retraction (`acme.challenge.delete`) is the ACME client's `finally`; the
controller also drops the rows no order of its own published (a dead
leader's), see :meth:`ReplicatedChallenges.drop_foreign`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from heroctld.controllers.acme.challenges import http01_path
from raft.replica import CommandRejected, NoLeader, RaftRefused, Replica

log = logging.getLogger("heroctld.certificates")

POLL_INTERVAL = 0.1  # between two checks of one node
REQUEST_TIMEOUT = 2.0  # one check of one node
RETRACT_TIMEOUT = 5.0  # a retraction must not hold a stopping controller


@dataclass(frozen=True)
class IngressEndpoint:
    """Where a node's ingress listens for plain HTTP (what the validator reaches on port 80)."""

    node: str
    address: str
    http_port: int

    def url(self, path: str) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.http_port}{path}"


def ingress_endpoints(nodes: Iterable[Mapping[str, Any]]) -> list[IngressEndpoint]:
    """The ready nodes whose row says they serve the ingress on an HTTP port."""
    out = []
    for node in nodes:
        ingress = node.get("ingress")
        if node.get("status") != "ready" or not isinstance(ingress, Mapping):
            continue
        port, address = ingress.get("http_port"), node.get("address")
        if ingress.get("enabled") and isinstance(port, int) and port > 0 and address:
            out.append(IngressEndpoint(str(node.get("name") or node.get("id")), address, port))
    return sorted(out, key=lambda e: (e.node, e.address, e.http_port))


async def _serves(
    session: aiohttp.ClientSession, endpoint: IngressEndpoint, host: str, path: str, answer: str
) -> bool:
    try:
        async with session.get(
            endpoint.url(path), headers={"Host": host}, allow_redirects=False
        ) as response:
            return response.status == 200 and (await response.text()).strip() == answer
    except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
        return False


async def wait_until_served(
    session: aiohttp.ClientSession,
    endpoints: list[IngressEndpoint],
    host: str,
    token: str,
    key_authorization: str,
    timeout: float,
) -> list[IngressEndpoint]:
    """Poll every endpoint until it serves the answer or ``timeout`` passes;
    returns those that never did (empty: all confirmed)."""
    path = http01_path(token)
    deadline = time.monotonic() + timeout

    async def until_served(endpoint: IngressEndpoint) -> bool:
        while not await _serves(session, endpoint, host, path, key_authorization):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(POLL_INTERVAL, remaining))
        return True

    served = await asyncio.gather(*(until_served(e) for e in endpoints))
    return [e for e, ok in zip(endpoints, served, strict=True) if not ok]


class ReplicatedChallenges:
    """A :class:`~heroctld.controllers.acme.ChallengePublisher` over the replicated `acme` table."""

    def __init__(self, replica: Replica, publish_wait: float = 10.0) -> None:
        self.replica = replica
        self.publish_wait = publish_wait
        self._mine: set[str] = set()  # tokens this leader's orders published
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
                connector=aiohttp.TCPConnector(force_close=True),
            )
        return self._session

    async def publish_http01(self, host: str, token: str, key_authorization: str) -> None:
        self._mine.add(token)
        await self.replica.write(
            "acme.challenge.put", host=host, token=token, key_authorization=key_authorization
        )
        with self.replica.read() as view:
            endpoints = ingress_endpoints(view.nodes.values())
        started = time.monotonic()
        missing = await wait_until_served(
            self._http(), endpoints, host, token, key_authorization, self.publish_wait
        )
        if not endpoints:
            log.warning("no node serves the ingress any more; asking the CA about %s anyway", host)
        elif missing:
            log.warning(
                "the challenge of %s is not served by %s after %.1fs; asking the CA anyway",
                host, ", ".join(e.node for e in missing), self.publish_wait,
            )  # fmt: skip
        else:
            log.debug(
                "the challenge of %s is served by %d node(s) after %.2fs",
                host, len(endpoints), time.monotonic() - started,
            )  # fmt: skip

    async def retract_http01(self, host: str, token: str) -> None:
        try:
            async with asyncio.timeout(RETRACT_TIMEOUT):
                await self.replica.write("acme.challenge.delete", token=token)
        finally:
            self._mine.discard(token)

    async def drop_foreign(self) -> int:
        """Delete the challenge rows no order of this leader published (a
        previous leader died mid-order); returns how many went."""
        with self.replica.read() as view:
            tokens = [t for t in view.acme.challenges() if t not in self._mine]
        dropped = 0
        for token in tokens:
            try:
                result = await self.replica.write("acme.challenge.delete", token=token)
            except (NoLeader, RaftRefused, CommandRejected) as error:
                log.info("could not drop a stale ACME challenge yet: %s", error)
                break
            dropped += bool(result.get("changed"))
        if dropped:
            log.info("dropped %d ACME challenge(s) a previous leader left", dropped)
        return dropped

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
