"""Runs the controllers while this server leads, and stops them when it does not."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from raft.replica import Replica

log = logging.getLogger("heroctld.controllers")

Controller = Callable[[], Awaitable[None]]


class Leadership:
    def __init__(self, replica: Replica, controllers: dict[str, Controller]) -> None:
        self.replica = replica
        self.controllers = controllers
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self, check_every: float = 0.1) -> None:
        try:
            while True:
                leading = self.replica.node.is_leader and self.replica.is_ready()
                if leading and not self._tasks:
                    log.info("leading: starting %s", ", ".join(self.controllers))
                    self._tasks = [
                        asyncio.create_task(self._guard(name, fn), name=name)
                        for name, fn in self.controllers.items()
                    ]
                elif not leading and self._tasks:
                    log.info("no longer leading: stopping controllers")
                    await self._stop()
                await asyncio.sleep(check_every)
        finally:
            await self._stop()

    async def _stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def _guard(self, name: str, fn: Controller) -> None:
        """A controller that fails is logged and restarted, never silently gone."""
        while True:
            try:
                await fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("controller %s failed; restarting", name)
                await asyncio.sleep(1.0)
