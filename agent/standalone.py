"""``heroctld agent``: a worker-only node (an agent that is not a raft member).

Besides the agent, it serves the agent API (``config.api_port``, see
:mod:`agent.http.worker_app`): the servers read this node's logs and metrics
through it, with credentials made from the node secret it registers.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from agent.agent import Agent
from agent.config import AgentConfig
from agent.http.worker_app import start_worker_api
from httpkit.local_node import LocalNode

__all__ = ["run_agent"]

log = logging.getLogger("heroctl.agent")


async def run_agent(config: AgentConfig) -> None:
    """Run until SIGTERM or SIGINT; the tasks keep running after it stops."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    agent = Agent(config)
    runner: web.AppRunner | None = None
    if config.api_port and agent.node_secret is not None:
        local = LocalNode(agent.logs, agent.metrics, agent.node_id, config.node_name)
        try:
            runner = await start_worker_api(
                local, agent.node_secret, config.api_bind, config.api_port
            )
        except OSError as exc:
            log.error(
                "agent API: cannot listen on %s:%d (%s); set another with --api-port",
                config.api_bind,
                config.api_port,
                exc.strerror or exc,
            )
            raise SystemExit(1) from None
        log.info(
            "agent API on %s:%d, advertised as %s (servers only)",
            config.api_bind,
            config.api_port,
            config.api_url,
        )
    else:
        log.warning(
            "agent API off (--api-port 0): the servers cannot read this node's logs and metrics"
        )
    await agent.start()
    log.info("agent for node %s talking to %s", config.node_name, ", ".join(config.servers))
    try:
        await stop.wait()
        log.info("agent shutting down (tasks keep running)")
    finally:
        if runner is not None:
            await runner.cleanup()
        await agent.stop()
