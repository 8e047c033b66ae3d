"""Which drivers this node offers: the ``driver`` setting against this machine.

Apart from the agent because it is the one place that knows every driver
and what each needs: the docker driver is imported only here and only when
wanted (it needs the docker SDK and an engine that answers), the exec
driver always works. Blocking: it probes the Docker engine, so the agent
calls it from its executor.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent.drivers.base import Driver

__all__ = ["build_drivers"]

log = logging.getLogger("heroctl.agent")


def build_drivers(
    choice: str, node_id: str, data_dir: str, executor_log: logging.Logger = log
) -> dict[str, Driver]:
    """The drivers this node offers (blocking: probes the Docker engine).

    ``auto``: docker when an engine answers, and exec always; ``docker`` or
    ``exec``: that one only. Both are scoped to ``node_id``: containers are
    labelled with it, so agents of other nodes (or other clusters) sharing
    one engine never touch each other's containers.
    """
    from agent.drivers.exec import ExecDriver

    drivers: dict[str, Driver] = {}
    if choice in ("auto", "docker"):
        try:
            from agent.drivers.docker import DockerDriver

            docker_driver = DockerDriver(node_id)
            if docker_driver.available():
                drivers["docker"] = docker_driver
            elif choice == "docker":
                executor_log.error(
                    "agent: driver 'docker' configured but no Docker engine answers; "
                    "docker tasks cannot run on this node"
                )
            else:
                executor_log.warning(
                    "agent: no Docker engine answers: falling back to the exec driver "
                    "(docker tasks will not be placed on this node)"
                )
        except ImportError as exc:
            executor_log.warning("agent: docker driver unavailable (%s)", exc)
    if choice in ("auto", "exec"):
        drivers["exec"] = ExecDriver(node_id, Path(data_dir) / "agent")
    return drivers
