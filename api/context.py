"""Typed app keys and the consistent-read helper every read handler uses."""

from __future__ import annotations

import os
import random
import ssl
from collections.abc import Callable

from aiohttp import web

from api.security.readmit import readmit
from domain.durations import EXAMPLES, DurationError, parse_duration
from domain.heartbeats import Heartbeats
from httpkit.errors import ApiError
from raft.replica import Replica

REPLICA = web.AppKey("replica", Replica)
HEARTBEATS = web.AppKey("heartbeats", Heartbeats)
# Seconds between SSE comments that keep idle streams (events, logs) alive.
SSE_PING_INTERVAL = float(os.environ.get("HEROCTL_SSE_PING_INTERVAL", "15"))
# How this server verifies the servers it calls (forwards, relays): the cluster CA.
TLS_CLIENT = web.AppKey("tls_client", ssl.SSLContext)
# The PEM of the CA this server's certificate chains to (None: TLS off), for GET /v1/cluster/ca.
CLUSTER_CA = web.AppKey("cluster_ca", Callable[[], str | None])


def replica_of(request: web.Request) -> Replica:
    return request.app[REPLICA]


def wants_stale(request: web.Request) -> bool:
    value = request.query.get("stale")
    return value is not None and value.lower() not in ("false", "0", "no")


async def read_view(request: web.Request) -> Replica:
    """Make the local state current for this read (unless `?stale=true`).

    Consistent by default: one coalesced raft barrier per group of reads, so a
    read that starts after any acknowledged write sees it, and a deposed
    leader cannot answer. Stale reads answer from local state at once.
    """
    replica = replica_of(request)
    if not wants_stale(request):
        await replica.consistent()
    return replica


def read_headers(replica: Replica, index: int) -> dict[str, str]:
    contact = replica.last_contact_ms()
    return {
        "X-HeroCtl-Index": str(index),
        "X-HeroCtl-Known-Leader": "true" if replica.known_leader() else "false",
        "X-HeroCtl-Last-Contact": str(contact if contact is not None else -1),
    }


MAX_WAIT = 600.0


def parse_wait(value: str) -> float:
    """A blocking query's `?wait=` (domain.durations' grammar), capped at MAX_WAIT."""
    try:
        seconds = parse_duration(value)
    except DurationError:
        raise ApiError(400, "invalid_parameter", f"wait must look like {EXAMPLES}") from None
    return min(seconds, MAX_WAIT)


async def blocking_view(request: web.Request, *tables: str) -> Replica:
    """A read that may block first (`?index=N&wait=5m`, as Nomad's blocking queries).

    Returns at once when the tables' index is already past N, else as soon as
    it passes N, else after the wait (with a small random jitter) with the same
    index. Then the read is made consistent (unless `?stale`).
    """
    replica = replica_of(request)
    raw_index = request.query.get("index")
    if raw_index is not None:
        try:
            index = int(raw_index)
        except ValueError:
            raise ApiError(400, "invalid_parameter", "index must be an integer") from None
        wait = parse_wait(request.query.get("wait", "5m"))
        wait += random.uniform(0, wait / 16)
        await replica.wait_for_change(tables, index, wait)
        readmit(request)  # revoked, logged out or no longer allowed while it waited
    if not wants_stale(request):
        await replica.consistent()
    return replica
