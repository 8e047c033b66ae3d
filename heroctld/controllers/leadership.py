"""Runs the controllers while this server leads, and stops them when it does not.

A restore of a backup (raft.fsm_restore) replaces the whole state under the
controllers' feet (what they keep in memory: heartbeats seen, webhook
workers, deployments watched): the leader restarts them all once it has
applied one, so each starts again from the restored state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection

from raft.replica import Replica

log = logging.getLogger("heroctld.controllers")

Controller = Callable[[], Awaitable[None]]


async def cancel_and_wait(
    tasks: Collection[asyncio.Task[None]], timeout: float | None = None
) -> set[asyncio.Task[None]]:
    """Cancel ``tasks`` and wait until every one has ended (or ``timeout``);
    returns those still running, each named in the log.

    The caller's own cancellation still propagates. ``with
    suppress(CancelledError): await task`` cannot tell the task's
    cancellation from the caller's, and swallows both: a caller that is a
    loop ending only when cancelled (Leadership.run) then runs on after the
    daemon said "stopped", and `asyncio.run` waits for it forever.
    """
    for t in tasks:
        t.cancel()
    if not tasks:
        return set()
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in done:
        if not t.cancelled() and t.exception() is not None:
            log.error("%s ended with %r while stopping", t.get_name(), t.exception())
    for t in pending:
        log.warning("%s still running %ss after it was cancelled", t.get_name(), timeout)
    return pending


class Leadership:
    def __init__(self, replica: Replica, controllers: dict[str, Controller]) -> None:
        self.replica = replica
        self.controllers = controllers
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self, check_every: float = 0.1) -> None:
        restores = self.replica.restores
        try:
            while True:
                leading = self.replica.is_leader and self.replica.is_ready()
                if self.replica.restores != restores:
                    restores = self.replica.restores
                    if self._tasks:
                        log.info("the state was restored from a backup: restarting controllers")
                        await self._stop()
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
        await cancel_and_wait(self._tasks)  # kept listed until they have ended
        self._tasks = []

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
