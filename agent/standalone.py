"""``heroctld agent``: a worker-only node (an agent that is not a raft member).

Besides the agent, it serves the agent API (``config.api_port``, see
:mod:`agent.http.worker_app`): the servers read this node's logs and metrics
through it, with credentials made from the node secret it registers. In a
TLS cluster (a CA given) it serves it over TLS with a certificate the cluster
signs at registration (:mod:`agent.http.worker_tls`), once registered.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Callable

from aiohttp import web

from agent.agent import Agent
from agent.config import AgentConfig
from agent.http.worker_app import start_worker_api
from agent.http.worker_tls import AgentApiTls
from agent.trust import CaRefused, pinned_ca_file
from httpkit.local_node import LocalNode

__all__ = ["run_agent"]

log = logging.getLogger("heroctl.agent")


async def run_agent(
    config: AgentConfig,
    ca_fingerprint: str | None = None,
    on_registered: Callable[[], None] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT; the tasks keep running after it stops.
    ``ca_fingerprint``: trust the cluster CA that has it (agent.trust);
    ``on_registered`` is called once the first registration succeeded."""
    loop = asyncio.get_running_loop()
    if ca_fingerprint:
        try:
            config.ca_file = await pinned_ca_file(config.servers, ca_fingerprint, config.data_dir)
        except (CaRefused, ValueError) as e:
            log.error("agent: %s", e)
            raise SystemExit(2) from None
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    agent = Agent(config)
    serve_api = bool(config.api_port and agent.node_secret is not None)
    api_tls = (
        AgentApiTls(config.data_dir, config.node_name) if serve_api and config.ca_file else None
    )
    if api_tls is not None:  # a TLS cluster: its agent API too, with a certificate it signs
        config.api_csr = api_tls.csr()
    runner: web.AppRunner | None = None
    if serve_api and api_tls is None:
        runner = await _listen(agent, config, None)
    elif not serve_api:
        log.warning(
            "agent API off (--api-port 0): the servers cannot read this node's logs and metrics"
        )
    await agent.start()
    log.info("agent for node %s talking to %s", config.node_name, ", ".join(config.servers))
    renewal: asyncio.Task[None] | None = None
    announce = asyncio.create_task(_announce(agent, stop, on_registered), name="agent-registered")
    try:
        if api_tls is not None and await _registered(agent, stop):
            if api_tls.load(agent.node):
                runner = await _listen(agent, config, api_tls.ctx)
                renewal = asyncio.create_task(api_tls.keep_current(agent), name="agent-api-tls")
            else:
                log.error(
                    "agent API off: the servers signed no certificate for it (the cluster has "
                    "no CA of its own, [tls] mode = files): its logs and metrics stay on it"
                )
        await stop.wait()
        log.info("agent shutting down (tasks keep running)")
    finally:
        announce.cancel()
        if renewal is not None:
            renewal.cancel()
        if runner is not None:
            await runner.cleanup()
        await agent.stop()


async def _registered(agent: Agent, stop: asyncio.Event) -> bool:
    """Wait for the first registration (False: stopped before it)."""
    waits = [asyncio.ensure_future(agent.registered.wait()), asyncio.ensure_future(stop.wait())]
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for w in pending:
        w.cancel()
    return agent.registered.is_set()


async def _announce(
    agent: Agent, stop: asyncio.Event, on_registered: Callable[[], None] | None
) -> None:
    if on_registered is not None and await _registered(agent, stop):
        on_registered()


async def _listen(agent: Agent, config: AgentConfig, tls: ssl.SSLContext | None) -> web.AppRunner:
    """Serve the agent API (SystemExit when its port is taken)."""
    assert agent.node_secret is not None
    local = LocalNode(agent.logs, agent.metrics, agent.node_id, config.node_name)
    try:
        runner = await start_worker_api(
            local, agent.node_secret, config.api_bind, config.api_port, tls
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
    return runner
