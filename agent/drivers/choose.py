"""Which drivers this node offers: the ``driver`` setting against this machine.

Apart from the agent because it is the one place that knows every driver
and what each needs: the docker driver is imported only here and only when
wanted (it needs the docker SDK and an engine that answers), the exec
driver always works. Nothing here asks the engine: whether it answers is
the agent's question, asked with a deadline and asked again until it does
(:mod:`agent.engine_probe`), because an engine may start after the agent,
or hang.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent.drivers.base import Driver

__all__ = ["build_drivers"]

log = logging.getLogger("heroctl.agent")


def build_drivers(
    choice: str, node_id: str, data_dir: str, engine_timeout: float = 30.0
) -> tuple[dict[str, Driver], Driver | None]:
    """The drivers that work now, and the engine-backed one to offer once
    its engine answers (None: not wanted, or no SDK). Blocking (the exec
    driver reads its state file): call it from an executor.

    ``auto``: docker (when its engine answers) and exec; ``docker`` or
    ``exec``: that one only. Both are scoped to ``node_id``: containers are
    labelled with it, so agents of other nodes (or other clusters) sharing
    one engine never touch each other's containers. ``engine_timeout``:
    seconds one engine request may take.
    """
    from agent.drivers.exec import ExecDriver

    engine: Driver | None = None
    if choice in ("auto", "docker"):
        try:
            from agent.drivers.docker import DockerDriver

            engine = DockerDriver(node_id, timeout=engine_timeout)
        except ImportError as exc:
            log.warning("agent: docker driver unavailable (%s)", exc)
    drivers: dict[str, Driver] = {}
    if choice in ("auto", "exec"):
        drivers["exec"] = ExecDriver(node_id, Path(data_dir) / "agent")
    return drivers, engine
