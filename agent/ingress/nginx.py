"""The ingress data plane of one node: a private nginx, supervised.

``NginxSupervisor`` owns one prefix and one nginx master (a child process in
its own session). It only ever runs a configuration that passed ``nginx -t``:
``apply`` renders, writes the certificates and a candidate next to the live
file, checks the candidate, and only then swaps it in and reloads gracefully
(SIGHUP: old workers finish their requests). A refused candidate, or a
reload the master rejects (a port it cannot bind), leaves the running
configuration and its files as they were; the error is returned and kept
for ``status()``.

If nginx dies it is restarted with the live configuration, with backoff,
logged once per failure streak. ``close`` stops it gracefully (SIGQUIT, then
SIGTERM, then SIGKILL of the whole group) and leaves no process behind.
Blocking work (file writes, /proc reads) runs in threads; ``nginx -t`` is an
asyncio subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.ingress import files, process
from agent.ingress.model import IngressConfig
from agent.ingress.paths import Paths
from agent.ingress.probe import probe
from agent.ingress.process import NginxError
from agent.ingress.render import render

__all__ = ["NginxSupervisor", "ApplyResult", "NginxError"]

log = logging.getLogger(__name__)

_STABLE_AFTER = 10.0  # seconds up before a failure streak is over
_MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class ApplyResult:
    """``changed``: nginx now serves the new configuration; ``error``: why not."""

    changed: bool
    error: str | None = None


class NginxSupervisor:
    """One nginx under ``prefix``: start, apply, restart, close, status."""

    def __init__(
        self,
        prefix: Path,
        nginx: str | None = None,
        *,
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        log_max_bytes: int = 64 << 20,
        maintenance_interval: float = 5.0,
    ) -> None:
        self.paths = Paths.in_prefix(prefix)
        found = probe(nginx)
        self._nginx, self._probe_reason = found.nginx, found.reason
        self._stream = found.stream
        self._alpn_unavailable = found.stream_reason or self.paths.socket_problem()
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._log_max_bytes = log_max_bytes
        self._maintenance_interval = maintenance_interval
        self._lock = asyncio.Lock()
        self._proc: asyncio.subprocess.Process | None = None
        self._ports: set[int] = set()
        self._applied: str | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._started = False
        self._closing = False
        self._reloads = 0
        self._restarts = 0
        self._last_error: str | None = None
        self._last_applied: float | None = None

    # -- discovery ----------------------------------------------------------

    @staticmethod
    def probe(nginx: str | None = None) -> tuple[str | None, str]:
        """The nginx binary to use (or None) and a reason fit for the node's
        ``ingress`` field: where it is and its version, or what is missing
        (``agent.ingress.probe``)."""
        found = probe(nginx)
        return found.nginx, found.reason

    @property
    def alpn_unavailable(self) -> str | None:
        """Why this ingress cannot answer tls-alpn-01 challenges (None: it can):
        no stream module, or no socket path that fits. ``apply`` refuses a
        config with ``alpn_challenges`` then; the caller leaves them out."""
        return self._alpn_unavailable

    # -- lifecycle ----------------------------------------------------------

    async def start(self, config: IngressConfig) -> None:
        """Prepare the prefix, check and install ``config``, start nginx and wait
        until it listens. Raises ``NginxError`` (or ``ValueError`` for a config
        the renderer refuses); ``status()`` keeps the reason."""
        if self._nginx is None:
            raise NginxError(self._probe_reason)
        async with self._lock:
            if self._started:
                raise RuntimeError("the ingress supervisor is already started")
            try:
                await asyncio.to_thread(process.reap_stale, self.paths)
                await asyncio.to_thread(files.prepare_prefix, self.paths)
                if self._alpn_unavailable is None:
                    await asyncio.to_thread(files.prepare_sockets_dir, self.paths)
                error = await self._install(config)
                if error is not None:
                    raise NginxError(error)
                await asyncio.to_thread(self._prune_certs, self._applied)
                await self._spawn()
            except (NginxError, ValueError, OSError) as e:
                self._last_error = str(e)
                raise
            self._started = True
            self._last_applied = time.time()
            self._watcher = asyncio.create_task(self._watch(), name="ingress-nginx-watch")

    async def apply(self, config: IngressConfig) -> ApplyResult:
        """Serve ``config`` if nginx accepts it; otherwise keep serving the old one."""
        if not self._started:
            raise RuntimeError("start() the ingress supervisor before apply()")
        async with self._lock:
            if self._closing:
                return ApplyResult(False, "the ingress is stopping")
            try:
                text = render(config, self.paths, self._stream)
            except ValueError as e:
                self._last_error = f"invalid ingress configuration: {e}"
                return ApplyResult(False, self._last_error)
            if text == self._applied:
                self._last_error = None
                return ApplyResult(False, None)
            previous, previous_ports = self._applied, self._ports
            error = await self._install(config, text)
            if error is None and self._running():
                error = await self._reload()
                if error is not None and previous is not None:
                    # The master kept its old configuration: so does the disk.
                    await asyncio.to_thread(files.write_atomic, self.paths.live_conf, previous)
                    self._applied, self._ports = previous, previous_ports
            await asyncio.to_thread(self._prune_certs, self._applied)
            if error is not None:
                self._last_error = error
                return ApplyResult(False, error)
            self._last_error = None
            self._last_applied = time.time()
            return ApplyResult(True, None)

    async def close(self) -> None:
        """Stop nginx gracefully within the deadlines; no process of it remains."""
        self._closing = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        async with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                await self._stop(proc)
            # A start cancelled half-way could have left a master we hold no handle of.
            await asyncio.to_thread(process.reap_stale, self.paths)
            await asyncio.to_thread(files.remove_sockets_dir, self.paths)
            self._started = False

    def status(self) -> dict[str, Any]:
        """For ``GET /v1/nodes/:id``'s ``ingress`` field."""
        if self._nginx is None:
            enabled, reason = False, self._probe_reason
        elif self._started and not self._closing:
            enabled, reason = True, None
        else:
            enabled = False
            reason = "stopped" if self._closing else (self._last_error or "not started")
        return {
            "enabled": enabled,
            "reason": reason,
            "nginx": self._probe_reason if self._nginx is not None else None,
            "pid": self._proc.pid if self._running() and self._proc is not None else None,
            "reloads": self._reloads,
            "restarts": self._restarts,
            "last_error": self._last_error,
            "last_applied": self._last_applied,
        }

    @property
    def pid(self) -> int | None:
        """The master's pid while it runs."""
        return self._proc.pid if self._running() and self._proc is not None else None

    # -- internals ----------------------------------------------------------

    def _running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def _install(self, config: IngressConfig, text: str | None = None) -> str | None:
        """Write the certificates and the candidate, ``nginx -t`` it, and on
        success make it the live file. Returns nginx's complaint, or None.
        Files written for a refused candidate are removed again."""
        text = render(config, self.paths, self._stream) if text is None else text
        written = await asyncio.to_thread(files.write_site_certs, config, self.paths)
        await asyncio.to_thread(files.write_atomic, self.paths.candidate_conf, text)
        error = await self._check(self.paths.candidate_conf)
        if error is not None:
            for path in written:
                path.unlink(missing_ok=True)
            return error
        os.replace(self.paths.candidate_conf, self.paths.live_conf)
        self._applied = text
        self._ports = {config.listeners.http_port, config.listeners.https_port}
        return None

    def _prune_certs(self, live_text: str | None) -> None:
        """Remove certificate files the live configuration does not name."""
        keep = {
            Path(p)
            for p in re.findall(r"ssl_certificate(?:_key)? (\S+);", live_text or "")
            if p.startswith(f"{self.paths.certs_dir}/")
        }
        files.remove_cert_files_except(self.paths, keep)

    async def _check(self, conf: Path) -> str | None:
        assert self._nginx is not None
        proc = await asyncio.create_subprocess_exec(
            self._nginx,
            "-t",
            "-q",
            "-p",
            f"{self.paths.prefix}/",
            "-c",
            str(conf),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return "nginx -t did not finish within 60s"
        if proc.returncode == 0:
            return None
        lines = [
            line.removeprefix("nginx: ").strip()
            for line in err.decode(errors="replace").splitlines()
            if line.strip() and "test failed" not in line
        ]
        return ("; ".join(lines) or f"nginx -t exited {proc.returncode}")[:2000]

    async def _reload(self) -> str | None:
        """SIGHUP, then wait for the master's verdict and, on success, for the
        old workers to let go of the listening sockets: when ``apply`` returns,
        new connections get the new configuration."""
        assert self._proc is not None
        master = self._proc.pid
        offset = await asyncio.to_thread(_size, self.paths.error_log)
        old_workers, listening = await asyncio.to_thread(_workers_and_sockets, master)
        os.kill(master, signal.SIGHUP)
        error = await process.confirm_reload(
            self.paths.error_log, offset, master, self._start_timeout
        )
        if error is None:
            self._reloads += 1
            await process.wait_detached(old_workers, listening, self._start_timeout)
        return error

    async def _spawn(self) -> None:
        """Start the master (none of this prefix runs: its stale sockets go)."""
        assert self._nginx is not None
        await asyncio.to_thread(files.remove_stale_sockets, self.paths)
        proc = await process.spawn(self._nginx, self.paths)
        try:
            await process.wait_listening(proc, self._ports, self._start_timeout, self.paths)
        except BaseException:
            await self._stop(proc, graceful=False)
            raise
        self._proc = proc

    async def _stop(self, proc: asyncio.subprocess.Process, graceful: bool = True) -> None:
        """SIGQUIT (old workers finish), SIGTERM, then SIGKILL to the whole group."""
        steps = [(signal.SIGQUIT, self._stop_timeout)] if graceful else []
        steps += [(signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)]
        for sig, timeout in steps:
            if proc.returncode is not None:
                break
            if sig == signal.SIGKILL:
                process.kill_group(proc.pid, sig)
            else:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), timeout)
        await self._kill_leftovers(proc.pid)

    async def _kill_leftovers(self, pgid: int) -> None:
        """Workers outlive a master killed with SIGKILL (and hold its ports)."""
        deadline = time.monotonic() + 5
        while members := await asyncio.to_thread(process.group_members, pgid):
            process.kill_group(pgid, signal.SIGKILL)
            if time.monotonic() > deadline:
                log.error("ingress: nginx processes %s survive SIGKILL", members)
                return
            await asyncio.sleep(0.02)

    async def _watch(self) -> None:
        """Restart nginx when it dies (backoff, one warning per failure streak:
        a streak ends once nginx stayed up ``_STABLE_AFTER``); between deaths,
        keep the logs under their cap."""
        failures = 0
        backoff = 0.1
        up_since = time.monotonic()
        while not self._closing:
            proc = self._proc
            if proc is not None:
                if proc.returncode is None:
                    try:
                        await asyncio.wait_for(proc.wait(), self._maintenance_interval)
                    except TimeoutError:
                        await self._maintain()
                        continue
                if self._closing:
                    return
                if time.monotonic() - up_since >= _STABLE_AFTER:
                    failures, backoff = 0, 0.1
                if failures == 0:
                    log.warning("ingress: nginx exited (%s); restarting it", proc.returncode)
                self._last_error = f"nginx exited ({proc.returncode})"
            failures += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)
            async with self._lock:
                if self._closing:
                    return
                if proc is not None:
                    await self._kill_leftovers(proc.pid)
                try:
                    await self._spawn()
                except (NginxError, OSError) as e:
                    self._proc = None
                    self._last_error = f"nginx restart failed: {e}"
                    log.debug("ingress: nginx restart failed: %s", e)
                    continue
                self._restarts += 1
                self._last_error = None
                up_since = time.monotonic()
                if failures > 1:
                    log.info("ingress: nginx serves again after %d attempts", failures)

    async def _maintain(self) -> None:
        """Truncate an overgrown error or access log in place (the master and
        workers write with O_APPEND and carry on at the new end)."""
        async with self._lock:
            for path in (self.paths.error_log, self.paths.access_log):
                if await asyncio.to_thread(_size, path) > self._log_max_bytes:
                    await asyncio.to_thread(os.truncate, path, 0)


def _workers_and_sockets(master: int) -> tuple[list[int], set[str]]:
    """The master's current workers and its listening sockets' inodes."""
    workers = [pid for pid in process.group_members(master) if pid != master]
    return workers, set(process.listening_sockets(master))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
