"""Webhook deliveries, on the leader: at least once, in order of index per webhook.

One task per webhook walks the replicated event ring from the webhook's
replicated cursor: the next event its filter wants is POSTed (signed), and the
outcome is written back as a `webhook.progress` command before the next one,
so a new leader resumes exactly there (an event whose success was not yet
replicated is sent again: at least once). A failed attempt keeps the event at
the head and schedules the next try with exponential backoff (1 s .. 5 min,
replicated too, so a leader change does not restart the schedule); after 24 h
it is given up and the walk goes on. Redeliveries asked for through the API
go first, once each.

Every HTTP call has a timeout and runs in the webhook's own task: an
unreachable receiver delays only its own webhook, never the API nor the other
webhooks. At most a few KiB of an answer are read (wd.RESPONSE_CAP).

Unless `[webhooks] allow_private`, an attempt never connects to a non-public
address (domain.webhook_targets): a literal IP in the URL is checked before
the request, and a name is resolved by `PublicResolver`, the session's
resolver, which refuses the whole answer if any address in it is not public.
The connector connects only to the addresses that resolver returned, so a
name that resolves to a public address when checked and to a private one a
moment later (DNS rebinding) cannot slip through: the check and the
connection use the same answer. A refused attempt is a failed one (retried,
then given up), recorded with why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from domain import webhook_signing as wd
from domain.webhook_targets import ALLOW_HINT, first_refusal, ip_literal, refusal
from heroctld.controllers.leadership import cancel_and_wait
from raft.fsm_events import EVENTS, matches
from raft.fsm_webhooks import DELIVERIES, WEBHOOKS, delivery_id
from raft.replica import CommandRejected, NoLeader, RaftRefused, Replica

log = logging.getLogger("heroctld.webhooks")

WATCHED = (EVENTS, WEBHOOKS, DELIVERIES)
SKIP_WRITE_EVERY = 500  # move a cursor over unwanted events after this many


class RefusedAddress(OSError):
    """A webhook's host is, or resolves to, an address it may not reach."""


class PublicResolver(AbstractResolver):
    """Resolves with `inner` (aiohttp's default) and refuses any answer holding
    a non-public address: what it returns is what the connector connects to."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self.inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answer = await self.inner.resolve(host, port, family)
        reason = first_refusal(r["host"] for r in answer)
        if reason is not None:
            raise RefusedAddress(f"{host} resolves to {reason}; {ALLOW_HINT}")
        return answer

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class DeliverySettings:
    backoff_base: float = wd.BACKOFF_BASE
    backoff_cap: float = wd.BACKOFF_CAP
    max_age: float = wd.MAX_AGE
    timeout: float = wd.TIMEOUT
    allow_private: bool = False  # [webhooks] allow_private: no address check at all

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> DeliverySettings:
        """`HEROCTL_WEBHOOK_BACKOFF_CAP` etc. (seconds): for tests and odd receivers."""
        env = dict(os.environ if env is None else env)
        out = cls()
        for field, var in (
            ("backoff_base", "HEROCTL_WEBHOOK_BACKOFF_BASE"),
            ("backoff_cap", "HEROCTL_WEBHOOK_BACKOFF_CAP"),
            ("max_age", "HEROCTL_WEBHOOK_MAX_AGE"),
            ("timeout", "HEROCTL_WEBHOOK_TIMEOUT"),
        ):
            if env.get(var):
                setattr(out, field, max(0.01, float(env[var])))
        return out


def _now_ms() -> int:
    return int(time.time() * 1000)


class Deliverer:
    def __init__(self, replica: Replica, cluster_key: str, settings: DeliverySettings) -> None:
        self.replica = replica
        self.secrets = wd.WebhookSecrets(cluster_key)
        self.settings = settings
        self.session: aiohttp.ClientSession | None = None
        self.workers: dict[str, asyncio.Task[None]] = {}
        self.wakes: dict[str, asyncio.Event] = {}

    def new_session(self, resolver: AbstractResolver | None = None) -> aiohttp.ClientSession:
        """The HTTP client of the deliveries: timeouts, and, unless private
        addresses are allowed, a `PublicResolver` around `resolver`."""
        s = self.settings
        if not s.allow_private:
            resolver = PublicResolver(resolver)
        connector = aiohttp.TCPConnector(limit=200, limit_per_host=8, resolver=resolver)
        timeout = aiohttp.ClientTimeout(total=s.timeout, connect=s.timeout)
        return aiohttp.ClientSession(timeout=timeout, connector=connector)

    async def run(self, wait: float = 30.0) -> None:
        self.session = self.new_session()
        index = -1
        try:
            while True:
                index = await self.replica.wait_for_change(WATCHED, index, wait)
                if self.replica.closing:  # shutting down: waits return at once
                    return
                with self.replica.read() as view:
                    ids = set(view.webhooks)
                for wid in list(self.workers):
                    if wid not in ids or self.workers[wid].done():
                        self.workers.pop(wid).cancel()
                        self.wakes.pop(wid, None)
                for wid in sorted(ids - set(self.workers)):
                    self.wakes[wid] = asyncio.Event()
                    self.workers[wid] = asyncio.create_task(
                        self._worker(wid), name=f"webhook {wid}"
                    )
                for wake in self.wakes.values():
                    wake.set()
        finally:
            await cancel_and_wait(list(self.workers.values()))
            self.workers.clear()
            await self.session.close()

    # --- one webhook ---------------------------------------------------------------
    async def _worker(self, wid: str) -> None:
        while True:
            try:
                if not await self._step(wid):
                    return
            except asyncio.CancelledError:
                raise
            except (NoLeader, RaftRefused) as e:
                log.info("webhook %s: progress not replicated (%s); retrying", wid, e)
                await asyncio.sleep(0.5)
            except Exception:
                log.exception("webhook %s: delivery step failed; retrying", wid)
                await asyncio.sleep(1.0)

    async def _sleep(self, wid: str, seconds: float) -> None:
        """Until woken (a new event, a redelivery) or `seconds` pass."""
        wake = self.wakes.get(wid)
        if wake is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):  # not wait_for: it may eat a cancel
                await wake.wait()

    async def _step(self, wid: str) -> bool:
        """One decision for one webhook; False once it is deleted."""
        wake = self.wakes.get(wid)
        if wake is not None:
            wake.clear()
        with self.replica.read() as view:
            hook = view.webhooks.get(wid)
            row = view.deliveries.get(wid)
            if hook is None or row is None:
                return False
            first, last = view.events.first_seq(), view.events.last_seq()
            events = view.events
            redeliver = row["redeliver"][0] if row["redeliver"] else None
            redeliver_event = events.get(redeliver["seq"]) if redeliver else None
            cursor = row["cursor"]
            nxt, scanned = None, 0
            for seq in range(max(cursor + 1, first), last + 1):
                scanned = seq
                ev = events.get(seq)
                if ev is not None and matches(ev["type"], hook["events"]):
                    nxt = ev
                    break
        if redeliver is not None:
            await self._redeliver(hook, redeliver, redeliver_event)
            return True
        if cursor + 1 < first:  # the ring moved past events this webhook never got
            missed = {
                "status": "missed",
                "seq": cursor + 1,
                "error": f"events {cursor + 1}..{first - 1} were dropped from the ring "
                "before they could be delivered",
                "ts": _now_ms(),
            }
            await self._progress(wid, cursor=first - 1, attempts=[missed])
            log.warning("webhook %s: %s", wid, missed["error"])
            return True
        if nxt is None:
            if scanned - cursor >= SKIP_WRITE_EVERY:
                await self._progress(wid, cursor=scanned)
            await self._sleep(wid, 30.0)
            return True
        pending = row["pending"] if row["pending"] and row["pending"]["seq"] == nxt["seq"] else None
        if pending is not None:
            delay = (pending["next_attempt"] - _now_ms()) / 1000
            if delay > 0:
                await self._sleep(wid, delay)
                return True
        attempt = (pending["attempts"] if pending else 0) + 1
        record = await self._post(hook, nxt, attempt)
        now = _now_ms()
        if record["status"] == "delivered":
            await self._progress(wid, cursor=nxt["seq"], attempts=[record], pending=None)
            return True
        first_attempt = pending["first_attempt"] if pending else record["ts"]
        if wd.gives_up(first_attempt, now, self.settings.max_age):
            record["status"] = "gave_up"
            await self._progress(wid, cursor=nxt["seq"], attempts=[record], pending=None)
            log.warning(
                "webhook %s: gave up %s after %d attempts", wid, record["delivery"], attempt
            )
            return True
        wait = wd.backoff(attempt, self.settings.backoff_base, self.settings.backoff_cap)
        wait *= random.uniform(0.9, 1.1)
        pending = {
            "seq": nxt["seq"],
            "delivery": record["delivery"],
            "attempts": attempt,
            "first_attempt": first_attempt,
            "next_attempt": now + int(wait * 1000),
            "last_error": record.get("error") or f"HTTP {record.get('code')}",
        }
        await self._progress(wid, attempts=[record], pending=pending)
        return True

    async def _redeliver(
        self, hook: dict[str, Any], item: dict[str, Any], event: dict[str, Any] | None
    ) -> None:
        if event is None:
            record = {
                "status": "missed",
                "delivery": item["delivery"],
                "seq": item["seq"],
                "error": "the event is no longer kept",
                "ts": _now_ms(),
                "redelivery": True,
            }
        else:
            record = await self._post(hook, event, 1, redelivery=True)
        await self._progress(hook["id"], attempts=[record], redelivered=[item["delivery"]])

    async def _post(
        self, hook: dict[str, Any], event: dict[str, Any], attempt: int, redelivery: bool = False
    ) -> dict[str, Any]:
        """One HTTP attempt; never raises (the outcome is the record)."""
        did = delivery_id(hook["id"], event["seq"])
        record: dict[str, Any] = {
            "delivery": did,
            "seq": event["seq"],
            "index": event["index"],
            "event": event["type"],
            "attempt": attempt,
            "redelivery": redelivery,
            "ts": _now_ms(),
            "code": None,
            "error": None,
        }
        started = time.monotonic()
        try:
            secret = self.secrets.open(hook["id"], hook["secret"])
            did, raw = wd.body(hook["id"], event)
            hdrs = wd.headers(secret, raw, did, event["type"], time.time(), redelivery)
            self._check_literal(hook["url"])
            assert self.session is not None
            async with self.session.post(
                hook["url"], data=raw, headers=hdrs, allow_redirects=False
            ) as r:
                await r.content.read(wd.RESPONSE_CAP)  # the rest is never read
                record["code"] = r.status
                if 200 <= r.status < 300:
                    record["status"] = "delivered"
                else:
                    record["status"] = "failed"
                    record["error"] = f"HTTP {r.status}"
        except TimeoutError:
            record.update(status="failed", error=f"no answer within {self.settings.timeout:g}s")
        except RefusedAddress as e:  # an IP literal, checked before the request
            record.update(status="failed", error=f"refused: {e}")
        except aiohttp.ClientConnectorError as e:  # PublicResolver's refusals arrive wrapped
            cause = e.os_error
            what = "refused" if isinstance(cause, RefusedAddress) else "cannot connect"
            record.update(status="failed", error=f"{what}: {cause or e}")
        except (aiohttp.ClientError, OSError, ValueError, wd.SecretError) as e:
            record.update(status="failed", error=f"{type(e).__name__}: {e}"[:300])
        record["duration_ms"] = int((time.monotonic() - started) * 1000)
        return record

    def _check_literal(self, url: str) -> None:
        """A URL naming an IP literally never meets the resolver: check it here."""
        host = urlsplit(url).hostname or ""
        literal = ip_literal(host)
        if self.settings.allow_private or literal is None:
            return
        if (reason := refusal(literal)) is not None:
            raise RefusedAddress(f"{reason}; {ALLOW_HINT}")

    async def _progress(self, wid: str, **fields: Any) -> None:
        try:
            await self.replica.write("webhook.progress", id=wid, **fields)
        except CommandRejected as e:
            if e.code != "webhook_not_found":
                raise
            return


async def webhook_loop(
    replica: Replica,
    cluster_key: str,
    settings: DeliverySettings | None = None,
    *,
    allow_private: bool = False,
) -> None:
    """The leader-only controller (see heroctld.controllers.leadership);
    `allow_private`: `[webhooks] allow_private` (when no `settings` are given)."""
    if settings is None:
        settings = DeliverySettings.from_env()
        settings.allow_private = allow_private
    await Deliverer(replica, cluster_key, settings).run()
