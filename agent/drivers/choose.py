"""Which drivers this node offers: the ``drivers`` setting against this machine.

Apart from the agent because it is the one place that knows every driver
and what each needs: the docker driver is imported only here and only when
wanted (it needs the docker SDK and an engine that answers), the exec
driver always works. Nothing here asks the engine: whether it answers is
the agent's question, asked with a deadline and asked again until it does
(:mod:`agent.engine_probe`), because an engine may start after the agent,
or hang. Exec is offered only when configured: it runs tasks as processes
on the host (as ``nobody``, in a cgroup where it can: :mod:`agent.drivers.exec`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from agent.drivers.base import Driver

__all__ = ["build_drivers"]

log = logging.getLogger("heroctl.agent")


def build_drivers(
    wanted: Sequence[str], node_id: str, data_dir: str, engine_timeout: float = 30.0
) -> tuple[dict[str, Driver], Driver | None]:
    """The drivers that work now, and the engine-backed one to offer once
    its engine answers (None: not wanted, or no SDK). Blocking (the exec
    driver reads its state file): call it from an executor.

    ``wanted``: the names from ``[agent] drivers``. Both drivers are scoped
    to ``node_id``: containers are labelled with it, so agents of other
    nodes (or other clusters) sharing one engine never touch each other's
    containers. ``engine_timeout``: seconds one engine request may take.
    """
    from agent.drivers.exec import ExecDriver

    engine: Driver | None = None
    if "docker" in wanted:
        try:
            from agent.drivers.docker import DockerDriver

            engine = DockerDriver(node_id, timeout=engine_timeout)
        except ImportError as exc:
            log.warning("agent: docker driver unavailable (%s)", exc)
    drivers: dict[str, Driver] = {}
    if "exec" in wanted:
        drivers["exec"] = ExecDriver(node_id, Path(data_dir) / "agent")
    return drivers, engine
