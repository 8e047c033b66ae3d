"""``heroctld agent``: a worker-only node (an agent that is not a raft member)."""

from __future__ import annotations

import asyncio
import logging
import signal

from agent.agent import Agent
from agent.config import AgentConfig

__all__ = ["run_agent"]

log = logging.getLogger("heroctl.agent")


async def run_agent(config: AgentConfig) -> None:
    """Run until SIGTERM or SIGINT; the tasks keep running after it stops."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    agent = Agent(config)
    await agent.start()
    log.info("agent for node %s talking to %s", config.node_name, ", ".join(config.servers))
    try:
        await stop.wait()
        log.info("agent shutting down (tasks keep running)")
    finally:
        await agent.stop()
