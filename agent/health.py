"""Allocation health: when an allocation counts as healthy, and the checks.

:class:`HealthTracker` is pure (the caller passes the time): an allocation
becomes ``healthy: true`` once every task has been running, and every check
passing, without a break for ``update.min_healthy_time`` seconds; it is
``healthy: false`` when that has not happened by ``update.healthy_deadline``
after the allocation began (it may still turn healthy later, which lets a
halted rolling update go on). Once healthy it stays so: this is deployment
health, the signal the scheduler's rolling updates and drains wait for.
Live check results travel separately, in ``health`` events.

The check runners (:func:`run_check`) do the I/O: ``http`` (GET on
``host_ip:host_port`` + path; 2xx and 3xx pass), ``tcp`` (a connection
opens) and ``command`` (run inside the task through the driver; exit 0
passes), each bounded by the check's ``timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

__all__ = ["HealthTracker", "CheckResult", "run_check"]


@dataclass
class HealthTracker:
    min_healthy_time: float
    healthy_deadline: float
    began: float  # when the allocation began to start on this node
    healthy: bool | None = None
    ok_since: float | None = None

    @classmethod
    def from_update(
        cls, update: Mapping[str, Any] | None, began: float, healthy: bool | None = None
    ) -> HealthTracker:
        update = update or {}
        return cls(
            min_healthy_time=float(update.get("min_healthy_time", 10)),
            healthy_deadline=float(update.get("healthy_deadline", 300)),
            began=began,
            healthy=healthy,
        )

    def observe(self, now: float, ok: bool) -> bool:
        """Feed the current state (``ok``: every task running and every check
        passing); returns whether ``healthy`` changed."""
        if self.healthy is True:
            return False
        before = self.healthy
        if ok:
            if self.ok_since is None:
                self.ok_since = now
            if now - self.ok_since >= self.min_healthy_time:
                self.healthy = True
        else:
            self.ok_since = None
        if self.healthy is None and now >= self.began + self.healthy_deadline:
            self.healthy = False
        return self.healthy is not before

    def wake_at(self) -> float | None:
        """When :meth:`observe` could next change its answer on its own."""
        if self.healthy is True:
            return None
        times = []
        if self.ok_since is not None:
            times.append(self.ok_since + self.min_healthy_time)
        if self.healthy is None:
            times.append(self.began + self.healthy_deadline)
        return min(times) if times else None


@dataclass(frozen=True, slots=True)
class CheckResult:
    passing: bool
    output: str = ""


CommandRunner = Callable[[list[str], float], Awaitable[tuple[int, str]]]


async def run_check(
    check: Mapping[str, Any],
    *,
    host_ip: str,
    ports: Mapping[str, int],
    session: aiohttp.ClientSession | None,
    run_command: CommandRunner | None = None,
) -> CheckResult:
    """Run one check once; never raises (a broken check is a failing one)."""
    kind = check.get("type")
    timeout = float(check.get("timeout", 2))
    try:
        if kind in ("http", "tcp"):
            port = ports.get(str(check.get("port")))
            if not port:
                return CheckResult(False, f"port {check.get('port')!r} has no host port")
            if kind == "tcp":
                return await _tcp(host_ip, port, timeout)
            assert session is not None
            return await _http(session, check, host_ip, port, timeout)
        if kind == "command":
            if run_command is None:
                return CheckResult(False, "this driver cannot run command checks")
            code, output = await asyncio.wait_for(
                run_command(list(check.get("command") or []), timeout), timeout + 1
            )
            tail = output.strip()[-200:]
            return CheckResult(code == 0, f"exit code {code}" + (f": {tail}" if tail else ""))
        return CheckResult(False, f"unknown check type {kind!r}")
    except TimeoutError:
        return CheckResult(False, f"timed out after {timeout:g}s")
    except Exception as exc:  # noqa: BLE001 - any failure of a check is a failing check
        return CheckResult(False, f"{type(exc).__name__}: {exc}")


async def _tcp(host: str, port: int, timeout: float) -> CheckResult:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except OSError as exc:
        return CheckResult(False, f"tcp {host}:{port}: {exc.strerror or exc}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return CheckResult(True, f"tcp {host}:{port} open")


async def _http(
    session: aiohttp.ClientSession,
    check: Mapping[str, Any],
    host: str,
    port: int,
    timeout: float,
) -> CheckResult:
    url = f"http://{host}:{port}{check.get('path', '/')}"
    method = str(check.get("method", "GET"))
    try:
        async with session.request(
            method,
            url,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as r:
            await r.content.read(4096)
            passing = 200 <= r.status < 400
            return CheckResult(passing, f"HTTP {r.status} from {method} {url}")
    except aiohttp.ClientError as exc:
        return CheckResult(False, f"{method} {url}: {exc or type(exc).__name__}")
