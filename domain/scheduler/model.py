"""What the scheduler reads and writes: nodes and allocations in, a plan out.

:class:`Node` and :class:`Allocation` are the inputs (built from table rows by
``from_dict``); :class:`Plan` is the output, made of :class:`Placement`,
:class:`Stop` and :class:`Failure` records (each with ``to_dict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PORT_RANGE = (20000, 32000)  # Nomad's dynamic port range
LIVE_STATUSES = frozenset({"pending", "running"})


# --- inputs -------------------------------------------------------------------


@dataclass(slots=True)
class Node:
    """A node as the scheduler sees it; ``cpu``/``memory`` are what may be
    allocated (MHz, MB), i.e. totals minus anything reserved for the host."""

    id: str
    name: str = ""
    address: str = ""
    cpu: int = 0
    memory: int = 0
    status: str = "ready"  # ready | draining | down | initializing
    eligible: bool = True
    drain: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    drivers: frozenset[str] = frozenset({"docker", "exec"})
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE
    reserved_ports: frozenset[int] = frozenset()

    @property
    def draining(self) -> bool:
        return self.drain or self.status == "draining"

    @property
    def schedulable(self) -> bool:
        return self.status == "ready" and self.eligible and not self.drain

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Node:
        """From a nodes-table row: ``id``, ``name``, ``address``, ``cpu`` and
        ``memory`` (or ``resources: {cpu, memory}``), ``status``,
        ``eligibility`` ("eligible"/"ineligible") or ``eligible`` (bool),
        ``drain`` (bool or a drain-strategy object), ``labels``,
        ``attributes``, ``drivers`` (list), ``port_range``, ``reserved_ports``."""
        res = doc.get("resources") or {}
        eligibility = doc.get("eligibility")
        eligible = (
            eligibility != "ineligible"
            if isinstance(eligibility, str)
            else bool(doc.get("eligible", True))
        )
        drivers = doc.get("drivers")
        if isinstance(drivers, Mapping):
            drivers = [k for k, v in drivers.items() if v]
        port_range = doc.get("port_range") or DEFAULT_PORT_RANGE
        return cls(
            id=str(doc["id"]),
            name=str(doc.get("name") or doc["id"]),
            address=str(doc.get("address", "")),
            cpu=int(doc.get("cpu", res.get("cpu", 0)) or 0),
            memory=int(doc.get("memory", res.get("memory", 0)) or 0),
            status=str(doc.get("status", "ready")),
            eligible=eligible,
            drain=bool(doc.get("drain")),
            labels={str(k): str(v) for k, v in (doc.get("labels") or {}).items()},
            attributes={str(k): str(v) for k, v in (doc.get("attributes") or {}).items()},
            drivers=frozenset(drivers) if drivers is not None else frozenset({"docker", "exec"}),
            port_range=(int(port_range[0]), int(port_range[1])),
            reserved_ports=frozenset(int(p) for p in doc.get("reserved_ports") or ()),
        )


@dataclass(slots=True)
class Allocation:
    """One replica of a group placed on a node.

    ``status`` is what the node reports (pending, running, complete, failed,
    lost); ``desired`` is what the cluster wants (run, stop). Only a live
    allocation (desired run, pending or running) holds cpu, memory and ports.
    ``healthy`` is the deployment health the caller observed: True once
    healthy for ``min_healthy_time``, False when it failed its deadline,
    None while unknown."""

    id: str
    job: str
    group: str
    node: str
    job_version: int = 0
    index: int = 0
    cpu: int = 0
    memory: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    status: str = "pending"
    desired: str = "run"
    healthy: bool | None = None
    previous: str | None = None

    @property
    def live(self) -> bool:
        return self.desired == "run" and self.status in LIVE_STATUSES

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Allocation:
        """From an allocations-table row: ``id``, ``job``, ``group``, ``node``
        (or ``node_id``), ``job_version``, ``index``, ``cpu``/``memory`` (or
        ``resources``), ``ports`` ({name: host port} or [{name, host}]),
        ``status`` (or ``client_status``), ``desired_status`` (or
        ``desired``), ``healthy``, ``previous_alloc`` (or ``previous``)."""
        get = doc.get
        res = get("resources")
        cpu = get("cpu")
        memory = get("memory")
        if res:
            cpu = res.get("cpu", 0) if cpu is None else cpu
            memory = res.get("memory", 0) if memory is None else memory
        ports = get("ports") or {}
        if not isinstance(ports, Mapping):
            ports = {
                str(p["name"]): int(p.get("host", p.get("value", 0)))
                for p in ports
                if p.get("host", p.get("value"))
            }
        node = get("node")
        version = get("job_version")
        status = get("status")
        desired = get("desired_status")
        previous = get("previous_alloc")
        return cls(
            id=str(doc["id"]),
            job=str(doc["job"]),
            group=str(doc["group"]),
            node=str(node if node is not None else get("node_id", "")),
            job_version=int(version if version is not None else get("version", 0) or 0),
            index=int(get("index", 0) or 0),
            cpu=int(cpu or 0),
            memory=int(memory or 0),
            ports={str(k): int(v) for k, v in ports.items()} if ports else {},
            status=str(status if status is not None else get("client_status", "pending")),
            desired=str(desired if desired is not None else get("desired", "run")),
            healthy=get("healthy"),
            previous=previous if previous is not None else get("previous"),
        )


# --- output -------------------------------------------------------------------


@dataclass(slots=True)
class Placement:
    """A new allocation to create. ``ports`` maps each port name of the
    group to its host port; ``previous`` is the allocation it replaces."""

    alloc_id: str
    job: str
    group: str
    index: int
    node_id: str
    node_name: str
    job_version: int
    cpu: int
    memory: int
    ports: dict[str, int]
    previous: str | None = None
    reason: str = "new"  # new | scale | lost | update | migrate | replace

    @property
    def name(self) -> str:
        return f"{self.job}.{self.group}[{self.index}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.alloc_id,
            "name": self.name,
            "job": self.job,
            "group": self.group,
            "index": self.index,
            "node": self.node_id,
            "node_name": self.node_name,
            "job_version": self.job_version,
            "resources": {"cpu": self.cpu, "memory": self.memory},
            "ports": dict(self.ports),
            "previous_alloc": self.previous,
            "reason": self.reason,
        }

    def to_allocation(self) -> Allocation:
        return Allocation(
            id=self.alloc_id,
            job=self.job,
            group=self.group,
            node=self.node_id,
            job_version=self.job_version,
            index=self.index,
            cpu=self.cpu,
            memory=self.memory,
            ports=dict(self.ports),
            status="pending",
            desired="run",
            previous=self.previous,
        )


@dataclass(slots=True)
class Stop:
    """An allocation to stop; ``lost`` when its node is gone (the caller
    marks it lost rather than complete)."""

    alloc_id: str
    job: str
    group: str
    node_id: str
    reason: str
    lost: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.alloc_id,
            "job": self.job,
            "group": self.group,
            "node": self.node_id,
            "reason": self.reason,
            "lost": self.lost,
        }


@dataclass(frozen=True, slots=True)
class Failure:
    """Replicas of a group that could not be placed, and why, in words."""

    group: str
    count: int
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "count": self.count,
            "reason": self.reason,
            "metrics": self.metrics,
        }


@dataclass(slots=True)
class Plan:
    job: str
    job_version: int
    places: list[Placement] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    # group -> allocations still waiting for a rolling replacement/migration
    deferred: dict[str, int] = field(default_factory=dict)
    # group -> why a rolling update does not progress (e.g. unhealthy replacement)
    halted: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.places and not self.stops

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "job_version": self.job_version,
            "places": [p.to_dict() for p in self.places],
            "stops": [s.to_dict() for s in self.stops],
            "failures": [f.to_dict() for f in self.failures],
            "deferred": dict(self.deferred),
            "halted": dict(self.halted),
        }
