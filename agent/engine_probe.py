"""Waiting for a Docker engine that does not answer yet.

The engine may start after the agent (a boot where ``heroctld`` comes up
first, a ``dockerd`` being restarted) or hang. Probed once at start, such an
engine used to be given up for good: the node never offered docker and the
containers it had run, labelled ``heroctl.alloc_id``, were orphaned. So the
agent asks again, with backoff, until the engine answers, and only then
offers its driver (a node that offers what it cannot run gets placements it
must fail). Meanwhile the engine's tasks are held, not failed (see
:mod:`agent.decisions`), so that its containers are adopted, as after an
agent restart, when it comes.

A probe is one ``ping`` with a short deadline (:data:`PROBE_TIMEOUT`): a
healthy engine answers it in milliseconds even under load, and a probe must
never hold the agent's start for long.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor

from agent.config import AgentConfig
from agent.drivers.base import Driver
from agent.drivers.calls import DriverCalls
from agent.drivers.choose import build_drivers

__all__ = ["PROBE_TIMEOUT", "await_engine", "choose_drivers"]

log = logging.getLogger("heroctl.agent")

PROBE_TIMEOUT = 5.0  # seconds a probe waits for the engine's answer
FIRST_RETRY = 0.5  # seconds before the second probe; doubles up to the interval


async def choose_drivers(
    cfg: AgentConfig, node_id: str, calls: DriverCalls, executor: Executor
) -> tuple[dict[str, Driver], Driver | None]:
    """The drivers to start with, and the engine-backed one to wait for
    (None: none wanted, or it answers already and is among the first)."""
    drivers, engine = await asyncio.get_running_loop().run_in_executor(
        executor, build_drivers, cfg.drivers, node_id, cfg.data_dir, cfg.engine_timeout
    )
    if engine is None:
        return drivers, None
    if await calls.available(engine, PROBE_TIMEOUT):
        return {engine.name: engine, **drivers}, None
    log.warning(
        "agent: no %s engine answers (yet): probing it every %gs at most; "
        "its tasks are not placed here until it answers",
        engine.name,
        cfg.engine_probe_interval,
    )
    return drivers, engine


async def await_engine(
    driver: Driver,
    calls: DriverCalls,
    on_ready: Callable[[Driver], Awaitable[None]],
    *,
    interval: float,
) -> None:
    """Probe ``driver`` until it answers (every ``interval`` seconds at most),
    then ``await on_ready(driver)``."""
    failures = 0
    while not await calls.available(driver, PROBE_TIMEOUT):
        failures += 1
        if failures % 60 == 0:
            log.warning(
                "agent: the %s engine still does not answer (%d probes); its tasks wait",
                driver.name,
                failures,
            )
        await asyncio.sleep(min(interval, FIRST_RETRY * 2 ** min(failures - 1, 10)))
    log.info("agent: the %s engine answers: its driver is offered now", driver.name)
    await on_ready(driver)
