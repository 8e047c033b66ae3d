"""How the agent's loops call a driver: off the event loop, each call with a
deadline, and whatever goes wrong a :class:`DriverError`.

Drivers block (see :mod:`agent.drivers.base`). The exec driver is local and
returns in its own time. The docker driver talks to an engine that can hang:
under load one ``runc create`` hung for minutes, and every call queued behind
it on the agent's shared threads waited too, exec tasks' included. So:

* an engine-backed driver gets threads of its own (:meth:`DriverCalls.isolate`):
  a hung engine can occupy only those, and exec work, health checks and the
  agent's file I/O go on. The pool's size is the bound on engine calls in
  flight;
* each of its calls has a deadline, queueing included (a stop adds the kill
  timeout, a start that pulls an image adds the pull's bound once the pull
  began). When it
  passes the caller gets a :class:`DriverError`: that allocation's action
  fails (``driver_error``, retried by the restart policy) and the round goes
  on. The thread itself is freed by the engine client's own socket timeout,
  the same value (:class:`agent.drivers.docker.DockerDriver`), so hung calls
  do not pile up; a call still queued when its deadline passes never runs;
* whatever else a driver raises becomes a :class:`DriverError` here too, so a
  caller handles one exception and one failing call never aborts a loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from agent.drivers.base import EVENT_PULLING, Driver, DriverError, TaskSpec, TaskState, TaskStats

__all__ = ["DriverCalls", "EngineLimits"]

log = logging.getLogger("heroctl.agent")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EngineLimits:
    """What an engine-backed driver may take: ``timeout`` seconds for one
    call (an engine answers in milliseconds and creates a container in
    seconds, so 30 s is far past healthy and short enough that a hung call
    fails its action rather than the node), ``pull_timeout`` more for a
    start that may pull its image (pulls take minutes), ``threads`` calls in
    flight (as many as the agent's own pool had, so sampling 50 containers'
    stats, about a second each, still fits in the metrics interval)."""

    timeout: float = 30.0
    pull_timeout: float = 600.0
    threads: int = 8


class DriverCalls:
    """Every driver call the agent's loops make. ``executor``: where drivers
    without limits of their own run (the agent's pool; None: the loop's)."""

    def __init__(self, executor: Executor | None = None) -> None:
        self.executor = executor
        self._engines: dict[str, tuple[ThreadPoolExecutor, EngineLimits]] = {}

    def isolate(self, name: str, limits: EngineLimits) -> None:
        """Driver ``name`` talks to an engine that can hang: threads of its
        own and a deadline for each call."""
        pool = ThreadPoolExecutor(max_workers=limits.threads, thread_name_prefix=f"agent-{name}")
        self._engines[name] = (pool, limits)

    def close(self) -> None:
        for pool, _ in self._engines.values():
            pool.shutdown(wait=False, cancel_futures=True)

    # --- the calls --------------------------------------------------------------

    async def available(self, driver: Driver, timeout: float) -> bool:
        """Whether the driver can run tasks now; False when it does not say
        so within ``timeout`` seconds (an engine that hangs is not there)."""
        try:
            return await self._run(driver, "probe", driver.available, deadline=timeout)
        except DriverError:
            return False

    async def list(self, driver: Driver) -> list[TaskState]:
        return await self._run(driver, "cannot list tasks", driver.list)

    async def start(self, driver: Driver, spec: TaskSpec) -> TaskState:
        """A start's deadline grows by the pull's bound once the driver says
        a pull began (its ``pulling`` event): an image already there costs
        no more than any call, a hung engine fails the start as soon."""
        limits = self._limits(driver)
        pulls = getattr(driver, "allow_pull", False) and spec.pull != "never"
        if limits is None or not pulls:
            return await self._run(driver, "cannot start the task", driver.start, spec)
        pulling = threading.Event()
        heard = spec.on_event

        def on_event(kind: str, message: str) -> None:
            if kind == EVENT_PULLING:
                pulling.set()
            if heard is not None:
                heard(kind, message)

        spec = dataclasses.replace(spec, on_event=on_event)
        return await self._run(
            driver,
            "cannot start the task",
            driver.start,
            spec,
            extra=limits.pull_timeout,
            extra_once=pulling,
        )

    async def stop(
        self, driver: Driver, alloc_id: str, task: str, timeout: float | None
    ) -> TaskState:
        # The engine waits the kill timeout itself (the task's, else its label's).
        limits = self._limits(driver)
        extra = timeout if timeout is not None else (limits.timeout if limits else 0.0)
        return await self._run(
            driver, "cannot stop the task", driver.stop, alloc_id, task, timeout, extra=extra
        )

    async def remove(self, driver: Driver, alloc_id: str, task: str) -> None:
        await self._run(driver, "cannot remove the task", driver.remove, alloc_id, task)

    async def stats(self, driver: Driver, alloc_id: str, task: str) -> TaskStats:
        return await self._run(driver, "cannot read stats", driver.stats, alloc_id, task)

    async def exec_command(
        self, driver: Driver, alloc_id: str, task: str, argv: list[str], timeout: float
    ) -> tuple[int, str]:
        runner = getattr(driver, "exec_command", None)
        if runner is None:
            raise DriverError(f"the {driver.name} driver cannot run command checks")
        return await self._run(
            driver, "cannot run the command", runner, alloc_id, task, argv, timeout, extra=timeout
        )

    # --- the boundary -------------------------------------------------------------

    def _limits(self, driver: Driver) -> EngineLimits | None:
        engine = self._engines.get(driver.name)
        return engine[1] if engine is not None else None

    async def _run(
        self,
        driver: Driver,
        what: str,
        fn: Callable[..., T],
        *args: Any,
        extra: float = 0.0,
        deadline: float | None = None,
        extra_once: threading.Event | None = None,
    ) -> T:
        """``fn(*args)`` on the driver's threads, within its deadline (plus
        ``extra``, or exactly ``deadline``), any failure a DriverError.
        With ``extra_once``, ``extra`` counts only if that is set by the
        time the deadline without it passes."""
        engine = self._engines.get(driver.name)
        executor = engine[0] if engine is not None else self.executor
        later = 0.0
        if deadline is None and engine is not None:
            deadline = engine[1].timeout + (extra if extra_once is None else 0.0)
            later = extra if extra_once is not None else 0.0
        future = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        try:
            if not later:
                return await asyncio.wait_for(future, deadline)
            try:
                return await asyncio.wait_for(asyncio.shield(future), deadline)
            except TimeoutError:
                if extra_once is None or not extra_once.is_set():
                    future.cancel()
                    raise
            assert deadline is not None
            deadline += later
            return await asyncio.wait_for(future, later)
        except DriverError:
            raise
        except TimeoutError:
            if not future.done() or future.cancelled():
                raise DriverError(
                    f"{what}: the {driver.name} engine did not answer within {deadline:g}s"
                ) from None
            raise DriverError(f"{what}: timed out") from None
        except Exception as exc:
            # A driver's contract is DriverError; anything else is a bug or a
            # failure it did not expect: logged in full, failed like the rest.
            log.warning("agent: %s driver raised %r", driver.name, exc, exc_info=exc)
            raise DriverError(f"{what}: {exc}") from exc
