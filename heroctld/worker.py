"""`heroctld agent` as a service: the worker-only agent (agent.standalone)
with systemd's notifications, its watchdog and a SIGHUP that reloads.

``READY=1`` goes once the agent runs (its registration with the servers goes
on in the background, retried until one answers: servers that are down must
not fail the unit), with a ``STATUS=`` line naming the node and its servers,
and a second ``STATUS=`` once it registered (``systemctl status`` shows it);
``WATCHDOG=1`` comes from the event loop.
SIGHUP sets the log level again from the config file's ``log_level`` (when
``--log-level`` was not given); every other setting needs a restart, which
leaves the node's tasks running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from agent.config import AgentConfig
from agent.standalone import run_agent
from heroctld.notify import Notifier
from heroctld.reload import set_log_level

__all__ = ["run_worker"]

log = logging.getLogger("heroctl.agent")


def _reload(level: Callable[[], str | None]) -> None:
    try:
        wanted = level()
    except ValueError as e:  # ConfigError: the file no longer reads
        log.error("reload: %s; keeping the running settings", e)
        return
    if wanted is None:
        log.info("reload: --log-level was given on the command line; nothing to do")
    elif set_log_level(wanted):
        log.info("reload: log level %s (other settings apply at the next restart)", wanted)
    else:
        log.error("reload: unknown log_level %r", wanted)


async def run_worker(
    config: AgentConfig, ca_fingerprint: str | None, level: Callable[[], str | None]
) -> None:
    """Run the agent until SIGTERM or SIGINT; ``level()`` is the log level
    a SIGHUP sets (None: the command line's, kept)."""
    loop = asyncio.get_running_loop()
    notifier = Notifier.from_environ()
    loop.add_signal_handler(signal.SIGHUP, _reload, level)
    watchdog = asyncio.create_task(notifier.watchdog(), name="systemd-watchdog")
    node = f"worker-only node {config.node_name}"
    servers = ", ".join(config.servers)
    notifier.send(READY=1, STATUS=f"{node}, registering with {servers}")

    def registered() -> None:
        notifier.send(STATUS=f"{node}, registered with {servers}")

    try:
        await run_agent(config, ca_fingerprint, on_registered=registered)
    finally:
        notifier.send(STOPPING=1, STATUS="stopping (tasks keep running)")
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
