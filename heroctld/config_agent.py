"""The `[agent]` table: what this node's agent offers (`HEROCTL_AGENT_<KEY>`),
read strictly by :mod:`heroctld.config_tables`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from agent.config import parse_port_range
from heroctld.config_tables import (
    DEFAULT_SOURCE,
    ConfigError,
    Table,
    duration,
    integer,
    one_of,
    shown,
    text,
)

log = logging.getLogger("heroctl")

AGENT_DRIVERS = ("docker", "exec")
DEFAULT_DRIVERS = ["docker"]
# The deprecated [agent] driver, as the list it stands for.
LEGACY_DRIVER = {"auto": ["docker", "exec"], "docker": ["docker"], "exec": ["exec"]}


@dataclass
class AgentSettings:
    """[agent] table, or HEROCTL_AGENT_<KEY>: what this node's agent offers.

    ``port_range``: host ports the scheduler may pick for this node's tasks
    ("20000-32000"); ``cpu`` (MHz), ``memory`` and ``disk`` (MB): totals
    offered (0: detected from /proc); ``host_ip``: where task ports are
    published (default: the advertised address; 127.0.0.1 with --dev);
    ``drivers``: the drivers it offers (default docker only: exec runs tasks
    as plain processes on the host, so a node offers it only when told to);
    ``driver`` (deprecated): docker, exec or auto (both), read as ``drivers``
    when that is not set. A worker-only node (``heroctld agent``) only:
    ``api_port``, the port of its agent API, through which the servers read
    its logs and metrics (0: none), on ``api_bind`` (default: ``host_ip``).
    ``ingress_release_timeout``: how long a stopping task waits at most for
    every ingress to stop sending it requests (the deployment drain)."""

    port_range: str = "20000-32000"
    cpu: int = 0
    memory: int = 0
    disk: int = 0
    host_ip: str = ""
    drivers: list[str] = field(default_factory=list)  # empty until read: DEFAULT_DRIVERS
    driver: str = ""
    api_port: int = 7072
    api_bind: str = ""
    ingress_release_timeout: float = 10.0


def _drivers(value: Any) -> list[str]:
    """A TOML list (``["docker", "exec"]``) or, from the environment, ``docker,exec``."""
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or any(n not in AGENT_DRIVERS for n in names):
        raise ValueError(f"expected a list of {', '.join(AGENT_DRIVERS)}, got {shown(value)}")
    return list(dict.fromkeys(names))


def resolve_drivers(agent: AgentSettings, source: str) -> None:
    """``drivers`` from the deprecated ``driver`` when only that is set
    (with a warning), else the default; both set is a mistake."""
    if agent.driver and agent.drivers:
        raise ConfigError(f"[agent] driver and drivers in {source}: drivers replaces driver")
    if agent.driver:
        agent.drivers = LEGACY_DRIVER[agent.driver]
        log.warning(
            '[agent] driver = "%s" is deprecated: it stands for drivers = %s; set that instead',
            agent.driver,
            shown(agent.drivers),
        )
    agent.drivers = agent.drivers or list(DEFAULT_DRIVERS)


def _port_range(value: Any) -> str:
    lo, hi = parse_port_range(value)
    return f"{lo}-{hi}"


AGENT = Table(
    "agent",
    AgentSettings,
    {
        "port_range": _port_range,
        "cpu": integer(),
        "memory": integer(),
        "disk": integer(),
        "host_ip": text,
        "drivers": _drivers,
        "driver": one_of(*LEGACY_DRIVER),
        "api_port": integer(maximum=65535),
        "api_bind": text,
        "ingress_release_timeout": duration(),
    },
)


def load_agent_settings(
    data: Any, env: dict[str, str], source: str = DEFAULT_SOURCE
) -> AgentSettings:
    settings = AGENT.read(data, env, source)
    resolve_drivers(settings, source)
    return settings
