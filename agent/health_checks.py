"""Health-check loops of a node's running tasks (the supervisor keeps them in
step with what runs after every reconcile).

One loop per running task whose spec has a check: it runs the check every
``interval`` (http and tcp on the task's published ports, command checks
through the task's driver, with the driver's deadline), records the output,
and wakes the agent when the task turns passing or failing, so the change is
reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp

from agent.decisions import Key
from agent.drivers.base import Driver, DriverError
from agent.drivers.calls import DriverCalls
from agent.health import CheckResult, run_check
from agent.state import RUNNING, AllocRuntime


class HealthCheckLoops:
    def __init__(
        self,
        drivers: Mapping[str, Driver],
        calls: DriverCalls,
        host_ip: str,
        http: aiohttp.ClientSession | None,
        clock: Callable[[], float],
        wake: Callable[[], None],
    ) -> None:
        self.drivers = drivers
        self.calls = calls
        self.host_ip = host_ip
        self.http = http
        self.clock = clock
        self.wake = wake
        self._checks: dict[Key, asyncio.Task[None]] = {}

    def sync(self, runtimes: Iterable[AllocRuntime]) -> None:
        """One check loop per running task with a check; none for the rest."""
        want: dict[Key, tuple[AllocRuntime, dict[str, Any]]] = {}
        for rt in runtimes:
            if rt.terminal or not rt.desired_run:
                continue
            for name, t in rt.tasks.items():
                if t.state != RUNNING:
                    continue
                check = rt.task_spec(name).get("check")
                if check:
                    want[(rt.id, name)] = (rt, check)
        for key in list(self._checks):
            if key not in want:
                self._checks.pop(key).cancel()
        for key, (rt, check) in want.items():
            if key not in self._checks:
                self._checks[key] = asyncio.create_task(
                    self._loop(rt, key[1], check), name=f"check-{key[0][:8]}-{key[1]}"
                )

    async def _loop(self, rt: AllocRuntime, name: str, check: Mapping[str, Any]) -> None:
        interval = max(0.05, float(check.get("interval", 10)))
        await asyncio.sleep(min(0.2, interval))
        while True:
            result = await self.check_once(rt, name, check)
            t = rt.tasks.get(name)
            if t is None or t.state != RUNNING:
                return
            if result.passing != t.check_ok:
                now = self.clock()
                if t.check_ok is not None or not result.passing:
                    state = "passing" if result.passing else "failing"
                    rt.event(now, "health", f"check {state}: {result.output}", name)
                t.check_ok = result.passing
                self.wake()
            t.check_output = result.output
            await asyncio.sleep(interval)

    async def check_once(
        self, rt: AllocRuntime, name: str, check: Mapping[str, Any]
    ) -> CheckResult:
        t = rt.tasks[name]
        driver = self.drivers.get(t.driver)

        async def run_command(argv: list[str], timeout: float) -> tuple[int, str]:
            if driver is None:
                raise DriverError(f"driver {t.driver!r} is not available on this node")
            return await self.calls.exec_command(driver, rt.id, name, argv, timeout)

        return await run_check(
            check,
            host_ip=self.host_ip,
            ports=rt.doc.get("ports") or {},
            session=self.http,
            run_command=run_command,
        )

    def cancel_all(self) -> list[asyncio.Task[None]]:
        """Cancel every loop; returns them, to wait for."""
        tasks = list(self._checks.values())
        for task in tasks:
            task.cancel()
        self._checks.clear()
        return tasks
