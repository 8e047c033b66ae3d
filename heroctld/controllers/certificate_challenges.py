"""The leader's ACME challenges: into the replicated state, served by every node.

An ACME validator may reach any node (DNS names all of them), so an answer
must be on every node's ingress before the CA is told to look. The
publisher answers the one challenge type ``[acme] challenge`` names:

* http-01: it proposes `acme.challenge.put` (every node's ingress reads the
  `acme` table through `GET /v1/nodes/:id/ingress`), then polls each ready
  node that advertises an ingress (`node["ingress"]`: `enabled`,
  `http_port`) at `http://<address>:<http_port>/.well-known/acme-challenge/<token>`
  with the validator's `Host`, until each answers the key authorization;
* tls-alpn-01: it proposes `acme.alpn_challenge.put` (the challenge
  certificate, its key sealed as ``acme-alpn:<host>``), then makes a TLS
  handshake with each such node's `https_port`, naming the host and offering
  only `acme-tls/1`, until each shows that certificate
  (:mod:`heroctld.controllers.certificate_alpn`). A node whose nginx lacks the
  stream module never does (its ingress `error` says why).

Either wait ends after ``publish_wait``. A node that never confirms does not
stop the order: the validator has the last word, and its error says what it
found.

The controller orders nothing while no node advertises an ingress on the
port the challenge needs (no validator could succeed), so there is normally
something to poll; if the last such node went away meanwhile, the publisher
goes on at once.

Retraction (`acme.challenge.delete`, `acme.alpn_challenge.delete`) is the
ACME client's `finally`; the controller also drops the rows no order of its
own published (a dead leader's), see :meth:`ReplicatedChallenges.drop_foreign`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from domain.crypto import KeyMaterial
from heroctld.controllers.acme.challenges import HTTP01, TLS_ALPN01, http01_path
from heroctld.controllers.certificate_alpn import wait_until_shown
from raft.replica import CommandRejected, NoLeader, RaftRefused, Replica

log = logging.getLogger("heroctld.certificates")

POLL_INTERVAL = 0.1  # between two checks of one node
REQUEST_TIMEOUT = 2.0  # one check of one node
RETRACT_TIMEOUT = 5.0  # a retraction must not hold a stopping controller


@dataclass(frozen=True)
class IngressEndpoint:
    """Where a node's ingress listens: plain HTTP (what the validator reaches
    on port 80 for http-01) and HTTPS (port 443, tls-alpn-01)."""

    node: str
    address: str
    http_port: int
    https_port: int = 0

    def url(self, path: str) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.http_port}{path}"


def _port(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def ingress_endpoints(
    nodes: Iterable[Mapping[str, Any]], challenge: str = HTTP01
) -> list[IngressEndpoint]:
    """The ready nodes whose row says they serve the ingress on the port
    ``challenge`` is validated on (HTTP for http-01, HTTPS for tls-alpn-01)."""
    out = []
    for node in nodes:
        ingress = node.get("ingress")
        if node.get("status") != "ready" or not isinstance(ingress, Mapping):
            continue
        http, https = _port(ingress.get("http_port")), _port(ingress.get("https_port"))
        needed = https if challenge == TLS_ALPN01 else http
        address = node.get("address")
        if ingress.get("enabled") and needed and address:
            name = str(node.get("name") or node.get("id"))
            out.append(IngressEndpoint(name, address, http, https))
    return sorted(out, key=lambda e: (e.node, e.address, e.http_port, e.https_port))


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
    """A :class:`~heroctld.controllers.acme.ChallengePublisher` (and
    :class:`~heroctld.controllers.acme.TlsAlpnPublisher`) over the replicated
    `acme` table. ``challenge_types`` tells the ACME client the one type to
    answer: ``[acme] challenge`` (tls-alpn-01 seals the challenge key, so it
    needs ``keys``)."""

    def __init__(
        self,
        replica: Replica,
        publish_wait: float = 10.0,
        *,
        keys: KeyMaterial | None = None,
        challenge: str = HTTP01,
    ) -> None:
        if challenge not in (HTTP01, TLS_ALPN01):
            raise ValueError(f"unknown ACME challenge type {challenge!r}")
        if challenge == TLS_ALPN01 and keys is None:
            raise ValueError("tls-alpn-01 seals the challenge's key: it needs the key material")
        self.replica = replica
        self.publish_wait = publish_wait
        self.keys = keys
        self.challenge = challenge
        self.challenge_types = (challenge,)
        self._mine: set[str] = set()  # tokens this leader's orders published
        self._mine_alpn: set[str] = set()  # hosts this leader's orders published
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
            endpoints = ingress_endpoints(view.nodes.values(), HTTP01)
        started = time.monotonic()
        missing = await wait_until_served(
            self._http(), endpoints, host, token, key_authorization, self.publish_wait
        )
        self._report(HTTP01, host, endpoints, missing, started)

    async def publish_tls_alpn01(self, host: str, cert_pem: str, key_pem: str) -> None:
        assert self.keys is not None
        self._mine_alpn.add(host)
        sealed = self.keys.seal_private_key(f"acme-alpn:{host}", key_pem)
        await self.replica.write(
            "acme.alpn_challenge.put", host=host, cert_pem=cert_pem, key=sealed
        )
        with self.replica.read() as view:
            endpoints = ingress_endpoints(view.nodes.values(), TLS_ALPN01)
        started = time.monotonic()
        missing = await wait_until_shown(endpoints, host, cert_pem, self.publish_wait)
        self._report(TLS_ALPN01, host, endpoints, missing, started)

    def _report(
        self,
        challenge: str,
        host: str,
        endpoints: list[IngressEndpoint],
        missing: list[IngressEndpoint],
        started: float,
    ) -> None:
        if not endpoints:
            log.warning("no node serves the ingress any more; asking the CA about %s anyway", host)
        elif missing:
            log.warning(
                "the %s challenge of %s is not served by %s after %.1fs; asking the CA anyway",
                challenge, host, ", ".join(e.node for e in missing), self.publish_wait,
            )  # fmt: skip
        else:
            log.debug(
                "the %s challenge of %s is served by %d node(s) after %.2fs",
                challenge, host, len(endpoints), time.monotonic() - started,
            )  # fmt: skip

    async def retract_http01(self, host: str, token: str) -> None:
        try:
            async with asyncio.timeout(RETRACT_TIMEOUT):
                await self.replica.write("acme.challenge.delete", token=token)
        finally:
            self._mine.discard(token)

    async def retract_tls_alpn01(self, host: str) -> None:
        try:
            async with asyncio.timeout(RETRACT_TIMEOUT):
                await self.replica.write("acme.alpn_challenge.delete", host=host)
        finally:
            self._mine_alpn.discard(host)

    async def drop_foreign(self) -> int:
        """Delete the challenge rows no order of this leader published (a
        previous leader died mid-order); returns how many went."""
        with self.replica.read() as view:
            stale = [
                ("acme.challenge.delete", {"token": t})
                for t in view.acme.challenges()
                if t not in self._mine
            ]
            stale += [
                ("acme.alpn_challenge.delete", {"host": h})
                for h in view.acme.alpn_challenges()
                if h not in self._mine_alpn
            ]
        dropped = 0
        for op, row in stale:
            try:
                result = await self.replica.write(op, **row)
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
