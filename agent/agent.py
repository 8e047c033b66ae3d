"""The node agent: registers this node, heartbeats, watches its allocations
and keeps its tasks in line, all through the HTTP API.

These loops on one event loop (the daemon's, for an embedded agent):

* **register + heartbeat**: ``POST /v1/nodes/register`` until it works,
  then ``POST /v1/nodes/{id}/heartbeat`` every ``ttl/3``; a 404
  ``node_not_found`` (the cluster forgot us) means register again
  (:mod:`agent.presence`);
* **watch**: ``GET /v1/nodes/{id}/allocations?index=N&wait=30s``, a
  blocking query; every answer replaces the desired allocations;
* **poll**: each driver's ``list()`` every ``poll_interval`` seconds (one
  Docker API call), to notice exits and vanished containers; one loop per
  driver, so an engine that fails or hangs delays no exec task's exit;
* **engine**: while the Docker engine does not answer, probe it until it
  does, then offer its driver (:mod:`agent.engine_probe`);
* **reconcile**: woken by the three above, by finished driver actions and
  by timers (delayed restarts, health deadlines); see
  :mod:`agent.supervisor`;
* **report**: what changed, batched after a short debounce, to
  ``POST /v1/allocations/status``; retried until the cluster takes it
  (:mod:`agent.report`);
* **ingress**: this node's nginx, started before the registration (which
  says whether it serves), fed the cluster's render model by a long poll,
  its access log read every few seconds (:mod:`agent.ingress_sync`).

Drivers block, so they run on the agent's own thread pool, never on the
event loop (and never starving the daemon's default executor); the Docker
engine has threads of its own and a deadline per call
(:mod:`agent.drivers.calls`). Stopping the agent leaves every task running:
the next agent adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from agent.cluster import ClusterClient
from agent.config import AgentConfig
from agent.drivers.base import Driver
from agent.drivers.calls import DriverCalls, EngineLimits
from agent.engine_probe import await_engine, choose_drivers
from agent.ingress_sync import IngressSync
from agent.logs.collector import LogCollector
from agent.logs.store import LogStore
from agent.metrics.sampler import MetricsSampler
from agent.metrics.store import MetricsStore
from agent.node import (
    CpuSampler,
    NodeIdentity,
    detect_totals,
    load_node_id,
    load_node_secret,
)
from agent.presence import Presence
from agent.report import Reporter
from agent.supervisor import Supervisor
from client import ApiClientError
from domain.node_credentials import node_credential

__all__ = ["Agent"]

log = logging.getLogger("heroctl.agent")


class Agent(Presence):
    """One node's agent. ``drivers`` (name -> driver) may be passed in;
    otherwise they are built from ``config.drivers`` when the agent starts."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        drivers: Mapping[str, Driver] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock = clock
        self.node_id = load_node_id(config.data_dir)
        # A worker-only node (its credential is not minted by a server): the
        # node secret, sent with the registration; its node credential to the
        # servers and theirs to its agent API (agent.http.worker_app) are made
        # with it. The configured token only enrolls the node (and is not
        # needed once it is registered).
        worker = not callable(config.token)
        self.node_secret = load_node_secret(config.data_dir) if worker else None
        # Logs and metrics stay on this node (the API reads these stores).
        agent_dir = Path(config.data_dir) / "agent"
        self.logs = LogStore(
            agent_dir / "logs", retention=config.log_retention, max_bytes=config.log_max_bytes
        )
        self.metrics = MetricsStore(agent_dir / "metrics", interval=config.metrics_interval)
        self.log_collector: LogCollector | None = None
        self._drivers = dict(drivers) if drivers is not None else None
        self.client = ClusterClient(
            config.servers,
            self._node_credential if worker else config.token,
            timeout=config.request_timeout,
            ca_file=config.ca_file,
        )
        self.enroll = (
            ClusterClient(
                config.servers,
                config.token or self._node_credential,
                timeout=config.request_timeout,
                ca_file=config.ca_file,
            )
            if worker
            else self.client
        )
        self.executor = ThreadPoolExecutor(
            max_workers=config.driver_threads, thread_name_prefix="agent-driver"
        )
        self.calls = DriverCalls(self.executor)
        self.calls.isolate(
            "docker",
            EngineLimits(timeout=config.engine_timeout, threads=config.engine_threads),
        )
        self.sampler: MetricsSampler | None = None
        self.identity: NodeIdentity | None = None
        self.supervisor: Supervisor | None = None
        self.registered = asyncio.Event()
        self.synced = asyncio.Event()  # the first watch result arrived
        self.ttl = config.default_ttl
        self.node: dict[str, Any] = {}
        self._wake = asyncio.Event()
        self.reporter = Reporter(
            self.client,
            self.node_id,
            self.registered,
            debounce=config.report_debounce,
            forgotten=self._forgotten,
            backoff=self._backoff,
        )
        self.ingress = IngressSync(
            config,
            self.client,
            self._path("/ingress"),
            self.registered,
            forgotten=self._forgotten,
            backoff=self._backoff,
            on_status=self._ingress_changed,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None
        self._cpu = CpuSampler()
        self._stopped = asyncio.Event()

    # --- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        engine: Driver | None = None  # wanted, not answering yet
        if self._drivers is None:
            self._drivers, engine = await choose_drivers(
                cfg, self.node_id, self.calls, self.executor
            )
        totals = await loop.run_in_executor(self.executor, detect_totals, cfg.data_dir)
        ingress = await self.ingress.start()
        self.identity = NodeIdentity(
            id=self.node_id,
            name=cfg.node_name,
            address=cfg.address,
            cpu=cfg.cpu or totals["cpu"],
            memory=cfg.memory or totals["memory"],
            disk=cfg.disk or totals["disk"],
            drivers=tuple(self._drivers),
            port_range=cfg.port_range,
            labels=dict(cfg.labels),
            attributes=self._attributes(),
            agent_api=cfg.api_url,
            agent_secret=self.node_secret,
            agent_csr=cfg.api_csr,
            ingress=ingress,
        )
        # The health checks' client: a fresh connection per check, so a check
        # holds no connection to a task between checks (a rainbow drain counts
        # the connections a stopping task still holds: agent.connections).
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        self.supervisor = Supervisor(
            self.node_id,
            self._drivers,
            fetch_secrets=self._fetch_secrets,
            host_ip=cfg.host_ip,
            clock=self.clock,
            executor=self.executor,
            wake=self._wake.set,
            http=self._http,
            calls=self.calls,
            release_timeout=cfg.ingress_release_timeout,
        )
        self.log_collector = LogCollector(self.logs, self._drivers, executor=self.executor)
        sampler = self.sampler = MetricsSampler(
            self.metrics,
            self._drivers,
            data_dir=cfg.data_dir,
            executor=self.executor,
            calls=self.calls,
            ingress_stats=self.ingress_stats,  # the ingress's per-host numbers, in the metrics
        )
        supervisor = self.reporter.supervisor = self.supervisor
        log.info(
            "agent: node %s (%s) drivers %s, cpu %d MHz, memory %d MB, ports %d-%d on %s",
            cfg.node_name,
            self.node_id,
            ",".join(self._drivers) or "none",
            self.identity.cpu,
            self.identity.memory,
            cfg.port_range[0],
            cfg.port_range[1],
            cfg.host_ip,
        )
        loops = [
            ("heartbeat", self._heartbeat_loop()),
            ("watch", self._watch_loop()),
            *((f"poll-{name}", self._poll_loop(name)) for name in self._drivers),
            ("reconcile", self._reconcile_loop()),
            ("report", self.reporter.run()),
            ("metrics", sampler.run(lambda: list(supervisor.observed.values()))),
            *self.ingress.loops(),
        ]
        if engine is not None:
            supervisor.awaited[engine.name] = self.clock() + cfg.engine_grace
            probe = await_engine(
                engine, self.calls, self._engine_ready, interval=cfg.engine_probe_interval
            )
            loops.append(("engine", probe))
        for name, coro in loops:
            self._tasks.append(asyncio.create_task(coro, name=f"agent-{name}"))

    async def _engine_ready(self, driver: Driver) -> None:
        """The awaited engine answers: poll its driver (the first listing
        adopts its containers, as after an agent restart), run and follow
        its tasks, and register again: the cluster places them here now."""
        assert self.supervisor and self.log_collector and self.sampler and self.identity
        name = driver.name
        self._drivers = {name: driver, **(self._drivers or {})}
        self.log_collector.drivers[name] = self.sampler.drivers[name] = driver
        self.supervisor.add_driver(driver)
        self._tasks.append(asyncio.create_task(self._poll_loop(name), name=f"agent-poll-{name}"))
        self.identity = dataclasses.replace(
            self.identity, drivers=tuple(self._drivers), attributes=self._attributes()
        )
        await self._register()

    async def run(self) -> None:
        """Start and run until :meth:`stop` (or cancellation)."""
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop talking and acting; the tasks keep running on the node."""
        self._stopped.set()
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.supervisor is not None:
            await self.supervisor.close()
        await self.ingress.close()  # nginx stops with the agent (its tasks do not)
        loop = asyncio.get_running_loop()
        if self.log_collector is not None:
            await loop.run_in_executor(None, self.log_collector.close)
        await loop.run_in_executor(None, self.logs.close)
        await loop.run_in_executor(None, self.metrics.close)
        # A last report, so a clean shutdown loses no status.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.reporter.send(), 2)
        await self.client.close()
        if self.enroll is not self.client:
            await self.enroll.close()
        if self._http is not None:
            await self._http.close()
        self.calls.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # --- helpers -----------------------------------------------------------------------

    def ingress_stats(self) -> dict[str, dict[str, Any]]:
        """Per-host ingress traffic on this node (agent.ingress.AccessLogReader.snapshot)."""
        return self.ingress.stats()

    async def _ingress_changed(self) -> None:
        """The ingress's status changed (a model it cannot serve, or can
        again): register again, so the cluster shows it."""
        if self.identity is not None:
            self.identity = dataclasses.replace(self.identity, ingress=self.ingress.status())
            if self.registered.is_set():
                await self._register()

    def _attributes(self) -> dict[str, str]:
        docker = "docker" in (self._drivers or {})
        return {"driver.docker": str(docker).lower(), **self.config.attributes}

    def _node_credential(self) -> str:
        assert self.node_secret is not None
        return node_credential(self.node_secret, self.node_id)

    async def _fetch_secrets(self, alloc_id: str, task: str) -> Mapping[str, Any]:
        path = f"/v1/allocations/{quote(alloc_id, safe='')}/secrets"
        return await self.client.get(path, {"task": task})

    # --- watch -------------------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        index = 0
        failures = 0
        wait = self.config.watch_wait
        while True:
            await self.registered.wait()
            began = time.monotonic()
            try:
                body, headers = await self.client.request(
                    "GET",
                    self._path("/allocations"),
                    params={"index": index, "wait": f"{wait:g}s"},
                    timeout=wait + self.config.request_timeout,
                )
            except ApiClientError as exc:
                if not self._forgotten(exc):
                    failures += 1
                    if failures in (1, 5) or failures % 30 == 0:
                        log.warning("agent: watching allocations failed: %s", exc)
                    await self._backoff(failures)
                continue
            failures = 0
            try:
                new_index = int(headers.get("X-HeroCtl-Index", "0"))
            except ValueError:
                new_index = 0
            if not isinstance(body, list):
                log.warning("agent: unexpected allocations answer: %r", type(body).__name__)
                await self._backoff(1)
                continue
            assert self.supervisor is not None
            self.supervisor.set_desired(body)
            self.synced.set()
            self._wake.set()
            if new_index == index and time.monotonic() - began < 0.05:
                await asyncio.sleep(0.5)  # a server that does not block: do not spin
            index = new_index

    # --- poll and reconcile ---------------------------------------------------------------

    async def _poll_loop(self, name: str) -> None:
        assert self.supervisor is not None
        while True:
            try:
                await self.supervisor.poll(name)
            except Exception:  # noqa: BLE001 - keep polling whatever a driver does
                log.exception("agent: polling the %s driver failed", name)
            self._wake.set()
            await asyncio.sleep(self.config.poll_interval)

    async def _reconcile_loop(self) -> None:
        sup = self.supervisor
        assert sup is not None
        while True:
            at = sup.wake_at()
            timeout = self.config.poll_interval
            if at is not None:
                timeout = max(0.0, min(timeout, at - self.clock()))
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the
            # cancellation of a stop that lands as the event fires (a hung stop).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await sup.reconcile()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("agent: reconcile failed")
            if self.log_collector is not None:
                # Hook: follow the output of every task started or adopted.
                self.log_collector.sync_supervisor(sup)
            if sup.pending_updates():
                self.reporter.wanted.set()
