"""Typed app keys and the consistent-read helper every read handler uses."""

from __future__ import annotations

from aiohttp import web

from raft.replica import Replica

REPLICA = web.AppKey("replica", Replica)


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
