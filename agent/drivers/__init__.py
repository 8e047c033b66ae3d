"""Task drivers: one small blocking interface (:class:`Driver`), two drivers.

``docker`` runs each task as a container on the node's Docker engine;
``exec`` runs it as a plain process. The docker driver is imported lazily
(it needs the docker SDK and an engine); the exec driver always works.
"""

from __future__ import annotations

from agent.drivers.base import (
    Driver,
    DriverError,
    HostVolume,
    PortMapping,
    TaskNotFound,
    TaskSpec,
    TaskState,
    TaskStats,
)

__all__ = [
    "Driver",
    "DriverError",
    "HostVolume",
    "PortMapping",
    "TaskNotFound",
    "TaskSpec",
    "TaskState",
    "TaskStats",
]
