"""The node's ingress kept in line with the cluster: nginx started, the render
model watched, the access log read.

Why nginx starts at the agent's start, with no site yet, rather than with the
first model: the model (``GET /v1/nodes/{id}/ingress``) is served to a
registered node only, and the registration must already say whether this
node serves the ingress (``ingress.enabled``) and, if not, why: nginx is
missing, both ports are 0, or nginx cannot start (a port taken, a privileged
port without root). Starting first also holds the ports from the agent's
start. Either way the agent runs on; the reason is logged once.

Then one task long-polls the model (``?index=N&wait=...``, like the
allocation watch) and hands each new one to ``NginxSupervisor.apply``; a
refused configuration keeps the previous one serving, its error is logged
once per distinct error (never the certificates' keys) and kept in the
status the node registers (a change of it registers the node again, so
``GET /v1/nodes/:id`` shows it). Another reads the JSON access log every few
seconds, in a thread, for the per-host numbers (``stats``).

``ingress_config`` (``agent.ingress.node_model``) is the pure half: the
model's JSON to an ``IngressConfig``, skipping (and naming) what nginx must
not be given, so that one bad site never stops the others from being served.
A node whose nginx cannot answer tls-alpn-01 (no stream module) serves the
rest of the model and names the challenges it leaves out in its status's
``error`` while they are pending.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from agent.cluster import ClusterClient
from agent.config import AgentConfig
from agent.ingress import (
    AccessLogReader,
    IngressConfig,
    Listeners,
    NginxError,
    NginxSupervisor,
)
from agent.ingress.node_model import ingress_config, reachable_upstream
from client import ApiClientError

__all__ = ["IngressSync", "ingress_config", "reachable_upstream"]

log = logging.getLogger("heroctl.agent")

_MAX_ERROR = 1000  # characters of an error kept in the node's status
# "2024/05/01 10:00:00 [emerg] 123#123: " before each of nginx's lines: the
# same refusal must read the same, to be logged (and registered) once.
_NGINX_PREFIX = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (\[\w+\]) \d+#\d+: ")


class IngressSync:
    """This node's ingress: ``start`` (before the registration), ``loops``
    (run by the agent once started), ``close`` (at the agent's stop)."""

    def __init__(
        self,
        config: AgentConfig,
        client: ClusterClient,
        path: str,
        registered: asyncio.Event,
        *,
        forgotten: Callable[[ApiClientError], bool],
        backoff: Callable[[int], Awaitable[None]],
        on_status: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self.prefix = Path(config.data_dir) / "agent" / "ingress"
        self._client = client
        self._path = path
        self._registered = registered
        self._forgotten = forgotten
        self._backoff = backoff
        self._on_status = on_status
        self.supervisor: NginxSupervisor | None = None
        self.reader: AccessLogReader | None = None
        self._listeners: Listeners | None = None
        self._reason: str | None = "not started"
        self._error: str | None = None
        self._logged: set[str] = set()
        self._stats: dict[str, dict[str, Any]] = {}
        self.applied = asyncio.Event()  # the first model was handed to nginx
        self.models = 0  # models handed to nginx (served or refused)

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        """Start nginx with no site, or find why this node cannot serve the
        ingress (logged once); returns the status the node registers."""
        self._listeners = listeners = self.config.ingress_listeners()
        if listeners is None:
            self._reason = "no ingress ports (http_port and https_port are 0)"
            log.info("agent: this node runs no ingress: %s", self._reason)
            return self.status()
        try:
            supervisor = await asyncio.to_thread(
                NginxSupervisor, self.prefix, self.config.ingress_nginx or None
            )
        except ValueError as e:  # a prefix nginx's syntax cannot name
            return self._disabled(f"the data directory cannot hold the ingress: {e}")
        probed = supervisor.status()  # the probe's verdict: where nginx is, or what is missing
        if probed["nginx"] is None:
            return self._disabled(str(probed["reason"]))
        found = str(probed["nginx"])
        try:
            await supervisor.start(IngressConfig(listeners, ()))
        except (NginxError, ValueError, OSError) as e:
            await supervisor.close()
            return self._disabled(f"nginx could not start: {_hint(str(e), listeners)}")
        self.supervisor = supervisor
        self.reader = AccessLogReader(supervisor.paths.access_log)
        self._reason = None
        log.info(
            "agent: ingress on %s ports %d (HTTP) and %d (HTTPS), %s",
            listeners.bind or "every address",
            listeners.http_port,
            listeners.https_port,
            found,
        )
        return self.status()

    def _disabled(self, reason: str) -> dict[str, Any]:
        self._reason = reason
        log.warning("agent: this node runs no ingress: %s", reason)
        return self.status()

    def loops(self) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        """The tasks to run while the ingress serves (none when it does not)."""
        if self.supervisor is None:
            return []
        return [("ingress", self._sync_loop()), ("ingress-stats", self._stats_loop())]

    async def close(self) -> None:
        """Stop nginx: no process of it remains."""
        supervisor, self.supervisor = self.supervisor, None
        if supervisor is not None:
            await supervisor.close()
            self._reason = "stopped"

    # -- what the agent shows ---------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The node's ``ingress`` field: whether it serves, why not, its ports,
        and the last error of a model it could not serve (None: all is served)."""
        listeners = self._listeners
        return {
            "enabled": self.supervisor is not None,
            "reason": None if self.supervisor is not None else self._reason,
            "http_port": listeners.http_port if listeners else 0,
            "https_port": listeners.https_port if listeners else 0,
            "error": self._error,
        }

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-host numbers of the last access-log read (AccessLogReader.snapshot)."""
        return self._stats

    # -- the loops --------------------------------------------------------------

    async def _sync_loop(self) -> None:
        index = 0
        failures = crashes = 0
        wait = self.config.watch_wait
        last: Any = None
        digest = ""  # the server's digest of `last`: it answers only when the model differs
        while True:
            await self._registered.wait()
            began = time.monotonic()
            params: dict[str, Any] = {"index": index, "wait": f"{wait:g}s"}
            if digest and self._error is None:
                params["digest"] = digest
            try:
                body, headers = await self._client.request(
                    "GET",
                    self._path,
                    params=params,
                    timeout=wait + self.config.request_timeout,
                )
            except ApiClientError as exc:
                if not self._forgotten(exc):
                    failures += 1
                    if failures in (1, 5) or failures % 30 == 0:
                        log.warning("agent: watching the ingress model failed: %s", exc)
                    await self._backoff(failures)
                continue
            failures = 0
            try:
                new_index = int(headers.get("X-HeroCtl-Index", "0"))
            except ValueError:
                new_index = 0
            if body != last or self._error is not None:
                try:
                    served = await self._apply(body)
                except Exception:  # noqa: BLE001 - a bug here must not end the watch
                    crashes += 1
                    if crashes in (1, 5) or crashes % 30 == 0:
                        log.exception("agent: ingress: applying the model failed")
                    await self._backoff(crashes)
                    continue
                crashes = 0
                last = body
                if served and isinstance(body, dict) and body.get("draining"):
                    await self._acknowledge(new_index)
            digest = headers.get("X-HeroCtl-Ingress-Digest", "")
            if new_index == index and time.monotonic() - began < 0.05:
                await asyncio.sleep(0.5)  # a server that does not block: do not spin
            index = new_index

    async def _acknowledge(self, index: int) -> None:
        """Tell the cluster this node's ingress serves the model of ``index``:
        the allocations it let go of may stop (their stop waits for every
        node's word, or its timeout)."""
        try:
            await self._client.post(f"{self._path}/applied", {"index": index})
        except ApiClientError as e:
            self._log_once(f"telling the cluster which model is served failed: {e}")

    async def _apply(self, model: Any) -> bool:
        """Hand ``model`` to nginx; whether nginx serves it now."""
        assert self.supervisor is not None and self._listeners is not None
        local = (self.config.address, self.config.host_ip)
        config, problems = ingress_config(
            model, self._listeners, ca_file=self.config.ca_file, local=local
        )
        unavailable = self.supervisor.alpn_unavailable
        if config.alpn_challenges and unavailable is not None:
            hosts = ", ".join(sorted(config.alpn_challenges))
            problems.append(f"{unavailable} (pending for {hosts}); this node answers http-01 only")
            config = dataclasses.replace(config, alpn_challenges={})
        for problem in problems:
            self._log_once(problem)
        try:
            refused = (await self.supervisor.apply(config)).error
        except OSError as e:  # the prefix's files (a full disk): the running config serves on
            refused = f"the ingress's files could not be written: {e}"
        if refused is not None:
            refused = _NGINX_PREFIX.sub(r"\1 ", refused)
            self._log_once(
                f"nginx refused the new configuration, the last one serves on: {refused}"
            )
        error = refused or ("; ".join(problems) if problems else None)
        await self._set_error(error[:_MAX_ERROR] if error else None)
        self.models += 1
        self.applied.set()
        return refused is None

    def _log_once(self, message: str) -> None:
        if message not in self._logged:
            self._logged.add(message)
            log.warning("agent: ingress: %s", message)

    async def _set_error(self, error: str | None) -> None:
        if error == self._error:
            return
        if error is None:
            log.info("agent: ingress: every site of the model is served")
            self._logged.clear()
        self._error = error
        if self._on_status is not None:
            await self._on_status()

    async def _stats_loop(self) -> None:
        reader = self.reader
        assert reader is not None
        while True:
            await asyncio.sleep(self.config.ingress_stats_interval)
            try:
                self._stats = await asyncio.to_thread(_read, reader)
            except OSError as e:
                log.debug("agent: reading the ingress access log failed: %s", e)


def _read(reader: AccessLogReader) -> dict[str, dict[str, Any]]:
    reader.poll()
    return reader.snapshot()


def _hint(error: str, listeners: Listeners) -> str:
    """nginx's words, and what to do about a privileged port without root."""
    low = min(listeners.http_port, listeners.https_port)
    if "Permission denied" in error and low < 1024:
        return (
            f"{error}: ports below 1024 need root (or CAP_NET_BIND_SERVICE), which this process "
            "lacks; set [ingress] http_port and https_port (HEROCTL_INGRESS_HTTP_PORT, "
            "HEROCTL_INGRESS_HTTPS_PORT) to other ports"
        )
    return error
