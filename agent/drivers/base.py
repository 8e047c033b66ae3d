"""The contract every task driver implements, and the values it passes around.

The agent reconciles the allocations the cluster wants on this node against
what its driver reports, so a driver only has to do six things: start a
task, stop it, inspect it, list every task it runs for this node (so the
agent can adopt them after its own restart instead of starting duplicates),
and read its logs and resource usage. Restarts are the agent's decision
(per the group's restart policy), never the driver's or the engine's.

Drivers are synchronous: their calls block (Docker API round trips, waiting
for a process to exit). The agent runs them in an executor
(``loop.run_in_executor``), never on the event loop. A fake driver for unit
tests implements the same :class:`Driver` Protocol and is passed in.

Tasks are identified by ``(alloc_id, task)``: one allocation runs every task
of its group, each task once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Driver",
    "DriverError",
    "TaskNotFound",
    "PortMapping",
    "HostVolume",
    "RegistryAuth",
    "TaskSpec",
    "TaskState",
    "TaskStats",
    "LABEL_PREFIX",
    "EVENT_PULLING",
    "EVENT_PULLED",
    "host_cpu",
    "port_env",
]

LABEL_PREFIX = "heroctl."
# Task states a driver reports.
RUNNING = "running"
EXITED = "exited"
CREATED = "created"  # exists, never started or being started
UNKNOWN = "unknown"
# What a driver tells a task's event sink (TaskSpec.on_event) of its image.
EVENT_PULLING = "pulling"  # a pull began, or its progress
EVENT_PULLED = "pulled"


class DriverError(Exception):
    """A driver could not do what was asked; the message says why in words
    a user can act on (shown in the allocation's events)."""


class TaskNotFound(DriverError):
    """No task with that allocation id and name is known to the driver."""


@dataclass(frozen=True, slots=True)
class PortMapping:
    """``host_port`` on the node (chosen by the scheduler or static) maps to
    ``to`` inside the task (``None``: the same number, as for exec tasks)."""

    name: str
    host_port: int
    to: int | None = None

    @property
    def task_port(self) -> int:
        return self.to if self.to is not None else self.host_port


@dataclass(frozen=True, slots=True)
class HostVolume:
    """Host directory ``source`` mounted at ``target`` in a container (docker
    only; the job's submitter was granted it at submit)."""

    source: str
    target: str
    read_only: bool = True


@dataclass(frozen=True, slots=True)
class RegistryAuth:
    """Credentials for a private registry (a docker task's ``registry_auth``
    with its password secret's value): handed to the engine for a pull,
    never shown (``repr`` leaves the password out)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class TaskSpec:
    """Everything a driver needs to run one task of one allocation.

    ``env`` is the task's plain environment; ``secret_env`` holds the
    secrets, already decrypted for this node. Both are handed to the engine
    or process at start, never written to a file by a driver, and kept out
    of ``repr`` so they never reach a log line. They differ for Docker: the
    engine stores a container's config (``env`` included) on disk, so the
    docker driver delivers ``secret_env`` over the container's stdin instead
    (see :mod:`agent.drivers.docker`).
    """

    alloc_id: str
    job: str
    group: str
    task: str
    node: str  # this node's name, recorded on the task for adoption
    image: str | None = None  # docker
    command: list[str] | None = None  # argv; None: the image's default (docker)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    secret_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    ports: tuple[PortMapping, ...] = ()
    # Who the task runs as (exec: None is nobody; docker: the image's user),
    # and what a docker task may have of the host: all granted at submit.
    user: str | None = None
    privileged: bool = False
    volumes: tuple[HostVolume, ...] = ()
    cpu: int = 100  # MHz
    memory: int = 128  # MB
    labels: Mapping[str, str] = field(default_factory=dict)
    host_ip: str = "127.0.0.1"  # where ports are published (the node's address)
    kill_timeout: float = 5.0
    job_version: int = 0
    # docker: when to pull the image (missing | always | never) and with
    # which credentials; ``on_event(kind, message)`` hears how a pull goes
    # (called from the driver's thread).
    pull: str = "missing"
    registry_auth: RegistryAuth | None = field(default=None, repr=False)
    on_event: Callable[[str, str], None] | None = field(default=None, repr=False, compare=False)

    def heroctl_labels(self) -> dict[str, str]:
        """The labels that make a task ours and say whose it is."""
        return {
            "heroctl.alloc_id": self.alloc_id,
            "heroctl.job": self.job,
            "heroctl.group": self.group,
            "heroctl.task": self.task,
            "heroctl.node": self.node,
            "heroctl.job_version": str(self.job_version),
        }

    def all_labels(self) -> dict[str, str]:
        user = {k: v for k, v in self.labels.items() if not k.startswith(LABEL_PREFIX)}
        return {**user, **self.heroctl_labels()}

    def full_env(self) -> dict[str, str]:
        """The task env plus what a task needs to know about itself:
        ``HEROCTL_ALLOC_ID``, ``HEROCTL_JOB``, ... and for each port
        ``HEROCTL_PORT_<NAME>`` (the port to listen on inside the task) and
        ``HEROCTL_IP_<NAME>``, ``HEROCTL_HOST_PORT_<NAME>``, ``HEROCTL_ADDR_<NAME>``
        (where others reach it)."""
        out = {
            "HEROCTL_ALLOC_ID": self.alloc_id,
            "HEROCTL_JOB": self.job,
            "HEROCTL_GROUP": self.group,
            "HEROCTL_TASK": self.task,
            "HEROCTL_NODE": self.node,
        }
        out.update(port_env(self.ports, self.host_ip))
        out.update(self.env)
        return out

    def env_with_secrets(self) -> dict[str, str]:
        """:meth:`full_env` plus the secrets (secrets win on a clash)."""
        return {**self.full_env(), **self.secret_env}


@dataclass(slots=True)
class TaskState:
    """What the driver observes of one task."""

    alloc_id: str
    task: str
    driver: str
    handle: str  # container id or pid
    state: str  # running | exited | created | unknown
    job: str = ""
    group: str = ""
    node: str = ""
    job_version: int = 0
    exit_code: int | None = None
    started_at: float | None = None  # unix seconds
    finished_at: float | None = None
    oom_killed: bool = False
    error: str = ""
    ports: dict[str, int] = field(default_factory=dict)  # name -> host port
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def to_dict(self) -> dict[str, Any]:
        return {
            "alloc_id": self.alloc_id,
            "task": self.task,
            "driver": self.driver,
            "handle": self.handle,
            "state": self.state,
            "job": self.job,
            "group": self.group,
            "node": self.node,
            "job_version": self.job_version,
            "exit_code": self.exit_code,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "oom_killed": self.oom_killed,
            "error": self.error,
            "ports": dict(self.ports),
        }


@dataclass(frozen=True, slots=True)
class TaskStats:
    """Resource usage; ``cpu_percent`` is of one core (200 = two cores busy)
    over the time since the previous sample of the same task (0.0 on the
    first sample)."""

    cpu_percent: float
    memory_bytes: int
    memory_limit_bytes: int | None = None
    pids: int | None = None
    at: float = 0.0  # unix seconds of the sample


@runtime_checkable
class Driver(Protocol):
    """A task driver. Every method blocks: call it from an executor."""

    name: str

    def available(self) -> bool:
        """Whether this driver can run tasks on this node right now."""
        ...

    def start(self, spec: TaskSpec) -> TaskState:
        """Start the task; if the task already runs (same allocation id and
        task), return its state instead of starting a second copy."""
        ...

    def stop(self, alloc_id: str, task: str, timeout: float | None = None) -> TaskState:
        """Stop the task: a polite signal, then a kill after ``timeout``
        seconds (the task's ``kill_timeout`` by default). Logs and the exit
        code stay readable until :meth:`remove`."""
        ...

    def remove(self, alloc_id: str, task: str) -> None:
        """Forget a task: kill it if it still runs and delete what is left
        (container, logs). Unknown tasks are ignored."""
        ...

    def inspect(self, alloc_id: str, task: str) -> TaskState:
        """The task's current state, or :class:`TaskNotFound`."""
        ...

    def list(self) -> list[TaskState]:
        """Every task of this node the driver knows, running or not."""
        ...

    def logs(self, alloc_id: str, task: str, tail: int | None = 100) -> str:
        """The last ``tail`` lines of the task's output (stdout and
        stderr interleaved), or all of it for ``None``."""
        ...

    def stats(self, alloc_id: str, task: str) -> TaskStats:
        """Current cpu and memory use of a running task."""
        ...


_PORT_NAME_RE = re.compile(r"[^A-Za-z0-9_]")


def port_env(ports: tuple[PortMapping, ...], host_ip: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for port in ports:
        key = _PORT_NAME_RE.sub("_", port.name).upper()
        env[f"HEROCTL_PORT_{key}"] = str(port.task_port)
        env[f"HEROCTL_HOST_PORT_{key}"] = str(port.host_port)
        env[f"HEROCTL_IP_{key}"] = host_ip
        env[f"HEROCTL_ADDR_{key}"] = f"{host_ip}:{port.host_port}"
    return env


def host_cpu() -> tuple[int, int]:
    """(cores, MHz per core) of this machine; the node's cpu total is their
    product, and a task's MHz are converted back to a share of cores."""
    cores = os.cpu_count() or 1
    mhz = 0.0
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("cpu mhz"):
                    mhz = max(mhz, float(line.split(":", 1)[1]))
    except (OSError, ValueError):
        pass
    return cores, int(mhz) if mhz >= 100 else 1000
