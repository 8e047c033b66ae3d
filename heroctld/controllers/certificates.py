"""The ingress's ACME certificates, obtained and renewed by the leader.

Everything is driven from the replicated state, never from this leader's
memory, so a new leader goes on where the last one stood:

* the hosts that need a certificate are every served domain with
  ``tls = "acme"`` (`view.ingress.domains()`) and ``manage.<[api] domain>``;
* a host needs an order when its `certs` row has no certificate, or
  ``renew_after`` (two thirds of the lifetime) has passed, or someone asked
  for one (``renew_requested``, `POST /v1/ingress/:host/renew`), and in every
  case only from ``retry_at`` on (the backoff after a failure);
* nothing is ordered while no ready node advertises an ingress on the port
  the challenge is validated on (`node["ingress"]`: HTTP for http-01, HTTPS
  for tls-alpn-01): no validator could reach an answer, and an order would
  only fail and spend the CA's failed-validation limit. The hosts stay
  `pending` until a node serves the ingress (a `nodes` change wakes the loop);
* an order answers the challenge ``[acme] challenge`` names (http-01 or
  tls-alpn-01) through the replicated `acme` table
  (:mod:`heroctld.controllers.certificate_challenges`) with the one account
  (:mod:`heroctld.controllers.certificate_account`), then proposes
  `cert.put` with the chain and its key sealed (label ``cert:<host>``). An
  order in flight on a leader that died is simply ordered again here.
* a failure is `cert.put` too: ``last_error`` (the CA's problem, never a key),
  ``failures + 1`` and ``retry_at`` after an exponential backoff, the status
  ``failed`` unless a certificate still valid is kept. `raft.event_derivation`
  turns a new ``sha256`` into `cert.renewed` and a grown ``failures`` into
  `cert.failed`.

At most ``concurrency`` orders run at once, one per host. A host no longer
served keeps its row for ``orphan_grace`` (counted by this leader, so a new
leader only waits longer): a job redeployed without then with its host, or an
entry deleted and added back, gets its certificate back without a new order
(and without spending the CA's duplicate-certificate rate limit); after the
grace the row is deleted (`cert.delete`).

The loop sleeps on the replicated tables it reads and on the earliest
``renew_after``/``retry_at``, not on a fixed poll.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from domain.crypto import KeyMaterial
from heroctld.controllers.acme import AcmeError, AcmeSettings, IssuedCertificate
from heroctld.controllers.acme.challenges import HTTP01, TLS_ALPN01
from heroctld.controllers.certificate_account import AcmeAccount
from heroctld.controllers.certificate_challenges import ReplicatedChallenges, ingress_endpoints
from heroctld.controllers.leadership import cancel_and_wait
from raft.replica import CommandRejected, NoLeader, RaftRefused, Replica

log = logging.getLogger("heroctld.certificates")

WATCHED = ("ingress", "jobs", "certs", "nodes")  # what decides which hosts need an order
MAX_SLEEP = 3600.0  # look again at least this often (a clock that jumped, a lost wakeup)
Row = Mapping[str, Any]


@dataclass(frozen=True)
class CertificateSettings:
    """What the certificate controller needs: the CA (``[acme]``), the API's
    domain (``[api] domain``: ``manage.<domain>`` needs a certificate too),
    the challenge type (``[acme] challenge``: ``http-01`` or ``tls-alpn-01``)
    and its pacing. ``retry_base`` doubles after each failure up to
    ``retry_max``; ``publish_wait`` bounds the wait until every ingress
    serves a challenge; ``orphan_grace``: how long a host no longer served
    keeps its certificate row."""

    acme: AcmeSettings
    api_domain: str | None = None
    challenge: str = HTTP01
    concurrency: int = 4
    retry_base: float = 5.0
    retry_max: float = 3600.0
    publish_wait: float = 10.0
    orphan_grace: float = 3600.0


# --- decisions: pure functions of the replicated rows ------------------------------------


def wanted_hosts(domains: Mapping[str, Row], api_domain: str | None) -> set[str]:
    """Every host the ingress serves with an ACME certificate."""
    hosts = {host for host, domain in domains.items() if domain.get("tls") == "acme"}
    if api_domain:
        hosts.add(f"manage.{api_domain}")
    return hosts


def due_at(row: Row | None) -> float:
    """When the host next needs an order (unix seconds; 0: now)."""
    if row is None:
        return 0.0
    retry_at = float(row.get("retry_at") or 0)
    if not row.get("cert_pem") or row.get("renew_requested"):
        return retry_at
    return max(retry_at, float(row.get("renew_after") or 0))


def backoff(failures: int, base: float, cap: float) -> float:
    """Seconds before the next attempt after ``failures`` failures in a row."""
    return min(cap, base * 2 ** max(0, failures - 1))


def issued_fields(
    issued: IssuedCertificate, sealed_key: dict[str, bytes], now: float, renew_requested: bool
) -> dict[str, Any]:
    """The `cert.put` fields of a new certificate (its key already sealed)."""
    return {
        "status": "valid",
        "cert_pem": issued.cert_pem,
        "key": sealed_key,
        "issuer": issued.issuer,
        "subject": issued.subject,
        "hosts": list(issued.hosts),
        "not_before": issued.not_before,
        "not_after": issued.not_after,
        "serial": issued.serial,
        "sha256": issued.sha256,
        "renew_after": issued.renew_after,
        "last_error": None,
        "failures": 0,
        "retry_at": 0,
        "renew_requested": renew_requested,
        "obtained_at": now,
    }


def failure_fields(
    row: Row | None, message: str, now: float, base: float, cap: float
) -> dict[str, Any]:
    """The `cert.put` fields after a failed order: a still valid certificate stays `valid`."""
    failures = int((row or {}).get("failures") or 0) + 1
    usable = bool(row and row.get("cert_pem") and float(row.get("not_after") or 0) > now)
    return {
        "status": "valid" if usable else "failed",
        "last_error": message,
        "failures": failures,
        "retry_at": now + backoff(failures, base, cap),
    }


def still_requested(before: Row | None, current: Row | None) -> bool:
    """Whether a renewal was asked for while the order ran (the row changed
    since it started and asks again): the new certificate must not swallow it."""
    if not current or not current.get("renew_requested"):
        return False
    return (before or {}).get("modify_index") != current.get("modify_index")


# --- the controller -----------------------------------------------------------------------


class CertificateController:
    """One leader's certificate work; :meth:`run` until cancelled (leadership ends)."""

    def __init__(
        self,
        replica: Replica,
        keys: KeyMaterial,
        settings: CertificateSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.replica = replica
        self.keys = keys
        self.settings = settings
        self.clock = clock
        self.account = AcmeAccount(replica, keys, settings.acme)
        self.challenges = ReplicatedChallenges(
            replica, settings.publish_wait, keys=keys, challenge=settings.challenge
        )
        self._orders: dict[str, asyncio.Task[None]] = {}
        self._orphaned_since: dict[str, float] = {}
        self._order_ended = asyncio.Event()
        self._said_no_ingress = False

    async def run(self) -> None:
        try:
            await self.challenges.drop_foreign()
            while True:
                with self.replica.read() as view:
                    index = view.index_of(*WATCHED)
                wake_at = await self.reconcile()
                await self._sleep(index, wake_at - self.clock())
        finally:
            await cancel_and_wait(list(self._orders.values()), timeout=10.0)
            await self.challenges.close()
            await self.account.close()

    async def reconcile(self) -> float:
        """Start the orders that are due, drop the rows past their grace; when to look again."""
        now = self.clock()
        with self.replica.read() as view:
            wanted = wanted_hosts(view.ingress.domains(), self.settings.api_domain)
            rows: dict[str, Row] = view.certs.copy()
            can_validate = bool(ingress_endpoints(view.nodes.values(), self.settings.challenge))
        self._say_whether_anything_serves(can_validate, wanted)
        wake_at = now + MAX_SLEEP
        for at, host in sorted((due_at(rows.get(h)), h) for h in wanted if h not in self._orders):
            if at > now:
                wake_at = min(wake_at, at)
            elif not can_validate:
                continue  # a node that starts serving the ingress changes `nodes`: we wake
            elif len(self._orders) < max(1, self.settings.concurrency):
                self._orders[host] = asyncio.create_task(
                    self._order(host, rows.get(host)), name=f"certificate {host}"
                )
            # else: due, but every slot is busy; an order that ends wakes the loop
        for host in [h for h in self._orphaned_since if h in wanted or h not in rows]:
            del self._orphaned_since[host]
        for host in sorted(set(rows) - wanted - set(self._orders)):
            since = self._orphaned_since.setdefault(host, now)
            if now - since < self.settings.orphan_grace:
                wake_at = min(wake_at, since + self.settings.orphan_grace)
                continue
            try:
                await self.replica.write("cert.delete", host=host)
            except (NoLeader, RaftRefused, CommandRejected) as error:
                log.info("could not delete the certificate of %s yet: %s", host, error)
                continue
            del self._orphaned_since[host]
            log.info("deleted the certificate of %s: not served for %.0fs", host, now - since)
        return wake_at

    def _say_whether_anything_serves(self, can_validate: bool, wanted: set[str]) -> None:
        """Log once (per change) that orders wait for a node serving the ingress."""
        waiting = bool(wanted) and not can_validate
        if waiting and not self._said_no_ingress:
            log.info(
                "no ready node serves the ingress over %s: %d host(s) wait for one "
                "before their certificates are ordered (%s)",
                "HTTPS" if self.settings.challenge == TLS_ALPN01 else "HTTP",
                len(wanted),
                self.settings.challenge,
            )
        elif self._said_no_ingress and not waiting and wanted:
            log.info("a node serves the ingress: ordering certificates")
        self._said_no_ingress = waiting

    async def _sleep(self, index: int, timeout: float) -> None:
        """Until a watched table moves past ``index``, an order ends, or ``timeout``."""
        if self._order_ended.is_set():
            self._order_ended.clear()
            return
        timeout = min(MAX_SLEEP, max(0.0, timeout)) if math.isfinite(timeout) else MAX_SLEEP
        changed = asyncio.ensure_future(self.replica.wait_for_change(WATCHED, index, timeout))
        ended = asyncio.ensure_future(self._order_ended.wait())
        try:
            await asyncio.wait((changed, ended), return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            ended.cancel()
        self._order_ended.clear()

    async def _order(self, host: str, before: Row | None) -> None:
        started = time.monotonic()
        try:
            client = await self.account.client()
            issued = await client.issue(host, self.challenges)
            with self.replica.read() as view:
                current = view.certs.get(host)
            sealed = self.keys.seal_private_key(f"cert:{host}", issued.key_pem)
            fields = issued_fields(issued, sealed, self.clock(), still_requested(before, current))
            await self.replica.write("cert.put", host=host, fields=fields)
            log.info(
                "stored the certificate of %s (serial %s) %.2fs after ordering it",
                host, issued.serial, time.monotonic() - started,
            )  # fmt: skip
        except asyncio.CancelledError:
            raise
        except (NoLeader, RaftRefused) as error:
            log.info(
                "the order for %s ends without a leader (%s): the next leader orders", host, error
            )
        except Exception as error:  # noqa: BLE001 - every failure is recorded and retried
            await self._record_failure(host, error)
        finally:
            self._orders.pop(host, None)
            self._order_ended.set()

    async def _record_failure(self, host: str, error: Exception) -> None:
        if isinstance(error, AcmeError):
            message = error.message
            log.warning("the certificate order for %s failed: %s", host, message)
        else:  # a bug, or the state refused a write: the details stay in this log
            message = f"internal error ({type(error).__name__}); see the leader's log"
            log.error("the certificate order for %s failed", host, exc_info=error)
        with self.replica.read() as view:
            row = view.certs.get(host)
        s = self.settings
        fields = failure_fields(row, message, self.clock(), s.retry_base, s.retry_max)
        try:
            await self.replica.write("cert.put", host=host, fields=fields)
        except (NoLeader, RaftRefused, CommandRejected) as write_error:
            log.info("could not record the failure of %s: %s", host, write_error)


async def certificate_loop(
    replica: Replica, keys: KeyMaterial, settings: CertificateSettings
) -> None:
    """The leader-only controller (see heroctld.controllers.leadership)."""
    await CertificateController(replica, keys, settings).run()
