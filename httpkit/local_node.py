"""This process's own agent as the HTTP surfaces see it: its log and metrics
stores behind small protocols.

The server's API reads its embedded agent's stores directly (no HTTP to
itself), and both the server and a worker-only node serve them to the other
servers under ``/v1/agent`` (:mod:`agent.http.endpoints`). The daemon wires
the agent's stores in (``heroctld.server``, ``agent.standalone``), so neither
HTTP layer imports the agent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from httpkit.request_rate import REQUESTS

KEEPALIVE = 5.0  # seconds between keep-alive lines of an idle follow


class LogLineLike(Protocol):
    def to_dict(self, alloc_id: str) -> dict[str, Any]: ...


class LogSubscription(Protocol):
    dropped: int

    async def get(self, timeout: float | None = None) -> list[Any]: ...

    def close(self) -> None: ...


class LogSource(Protocol):
    """The agent's log store (:class:`agent.logs.store.LogStore`)."""

    def has(self, alloc_id: str) -> bool: ...

    def tail(
        self,
        alloc_id: str,
        lines: int | None = 100,
        *,
        stream: str | None = None,
        task: str | None = None,
        since: int | None = None,
    ) -> list[Any]: ...

    def subscribe(
        self,
        alloc_id: str,
        loop: asyncio.AbstractEventLoop,
        *,
        lines: int | None = 10,
        stream: str | None = None,
        task: str | None = None,
        since: int | None = None,
    ) -> tuple[list[Any], LogSubscription]: ...


class MetricSource(Protocol):
    """The agent's metrics store (:class:`agent.metrics.store.MetricsStore`)."""

    interval: float

    def current(self) -> dict[str, Any]: ...

    def ingress(self) -> dict[str, dict[str, Any]]: ...

    def query(
        self,
        metric: str,
        *,
        alloc: str | None = None,
        job: str | None = None,
        host: str | None = None,
        start: float,
        end: float,
        step: float | None = None,
    ) -> dict[str, Any]: ...


@dataclass
class LocalNode:
    """This process's own agent (none on a server with ``--no-agent``): its
    stores and who it is, set by the daemon once the agent exists."""

    logs: LogSource | None = None
    metrics: MetricSource | None = None
    node_id: str | None = None
    name: str | None = None


LOCAL_NODE = web.AppKey("local_node", LocalNode)


def current_doc(app: web.Application, name: str) -> dict[str, Any]:
    """This node's last sample, its ingress per host at that sample (``{}``
    when it runs none: ``{host: {"requests", "requests_per_second",
    "responses": {"1xx".."5xx"}, "bytes_sent", "bytes_received",
    "upstream_p50_ms", "upstream_p99_ms"}}``, counters since the node's
    access-log reader started); on a server (which counts its API requests)
    also its request rate."""
    local = app[LOCAL_NODE]
    doc: dict[str, Any] = {
        "server": name,
        "node_id": local.node_id,
        "sample": local.metrics.current() if local.metrics is not None else {},
        "interval": local.metrics.interval if local.metrics is not None else None,
        "ingress": local.metrics.ingress() if local.metrics is not None else {},
    }
    if REQUESTS in app:
        counter = app[REQUESTS]
        doc["api"] = {"requests_per_second": counter.rate(), "requests_total": counter.total}
    return doc
