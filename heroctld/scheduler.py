"""The scheduler: (job, nodes, allocations) -> Plan, pure and fast.

The leader's scheduling controller reads the state at index N, calls
:func:`schedule` for a job, and proposes the plan's stops and placements as
commands. Nothing here does I/O, reads a clock or touches replicated state,
so it is unit- and property-tested and benchmarked on thousands of simulated
nodes (``bench/bench_scheduler.py``).

What a plan does, per task group of the job (the job is normalized by
:mod:`heroctld.jobspec` and carries its ``version``):

* **lost**: live allocations on a node that is ``down`` or unknown are stopped
  (``Stop.lost``) and replaced at once;
* **scale down**: extra allocations are stopped, preferring those on draining
  nodes, of an old version, unhealthy, pending, then those on the nodes that
  hold most replicas of the group (so what remains stays spread);
* **scale up / missing**: missing replicas are placed at once, each with the
  smallest free replica index;
* **rolling update** (service jobs): allocations of an older job version are
  replaced at most ``update.max_parallel`` at a time (0 = all at once): the
  old one is stopped and its replacement placed in the same plan (its
  ``previous`` names the old one). A replacement is *in flight* until the
  caller reports it healthy (``Allocation.healthy is True``, which the caller
  sets only after ``min_healthy_time``); in-flight replacements use up the
  ``max_parallel`` budget. A replacement reported unhealthy
  (``healthy is False``) or failed halts the update, as a failed Nomad
  deployment does, until a new version is submitted;
* **drain** (service jobs): an allocation on a draining node gets its
  replacement placed first (``previous`` set, same ``max_parallel`` budget);
  the old one is stopped only once the replacement is healthy.

Placement: a node is feasible when it is ``ready``, eligible and not
draining, has every driver the group's tasks use and satisfies the job's,
group's and tasks' constraints. Feasible nodes sit in tiers by how many
replicas of the group they already run; a replica goes to the lowest tier
that has room (spread first), and within the tier to the best of a few
randomly sampled nodes that fit (bin-packing on cpu and memory, minus a
penalty for other groups of the same job: Nomad's "power of k choices").
A sampled node that cannot fit the group is dropped from the group's tiers
for good (free capacity only shrinks while a group is placed), so each
placement costs O(limit) and a group costs O(nodes) once to filter, never
O(nodes) per placement. When nothing fits, the plan carries a readable
failure (``"no node has 2048 MB free (3 nodes evaluated)"``).

Determinism: choices come from a ``random.Random`` seeded from the job name,
version and the allocation count (or the caller's ``seed``); allocation ids
come from ``new_id`` (injected; 32 random hex digits by default).
"""

from __future__ import annotations

import heapq
import math
import os
import random
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "Node",
    "Allocation",
    "Placement",
    "Stop",
    "Failure",
    "Plan",
    "ClusterState",
    "schedule",
    "schedule_on",
    "stop_job",
    "DEFAULT_PORT_RANGE",
    "DEFAULT_CANDIDATE_LIMIT",
]

DEFAULT_PORT_RANGE = (20000, 32000)  # Nomad's dynamic port range
DEFAULT_CANDIDATE_LIMIT = 4
LIVE_STATUSES = frozenset({"pending", "running"})
JOB_SPREAD_PENALTY = 0.5  # per allocation of the same job (other group) on a node


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


# --- cluster state (usage index) ----------------------------------------------


class ClusterState:
    """Nodes plus per-node usage derived from the allocations.

    Built in O(nodes + allocations); a controller (or the benchmark) can keep
    one and :meth:`apply` each committed plan instead of rebuilding it."""

    def __init__(
        self,
        nodes: Iterable[Node | Mapping[str, Any]],
        allocations: Iterable[Allocation | Mapping[str, Any]] = (),
    ) -> None:
        self.nodes: list[Node] = [n if isinstance(n, Node) else Node.from_dict(n) for n in nodes]
        self.node_pos: dict[str, int] = {n.id: i for i, n in enumerate(self.nodes)}
        count = len(self.nodes)
        self.cap_cpu: list[int] = [n.cpu for n in self.nodes]
        self.cap_mem: list[int] = [n.memory for n in self.nodes]
        self.used_cpu: list[int] = [0] * count
        self.used_mem: list[int] = [0] * count
        self.used_ports: list[set[int]] = [set(n.reserved_ports) for n in self.nodes]
        # (job, group) -> {node position: live allocations}; job -> same.
        self.group_count: dict[tuple[str, str], dict[int, int]] = {}
        self.job_count: dict[str, dict[int, int]] = {}
        self.by_job: dict[str, dict[str, Allocation]] = {}
        self.allocs: dict[str, Allocation] = {}
        for alloc in allocations:
            self.add(alloc if isinstance(alloc, Allocation) else Allocation.from_dict(alloc))

    def update_node(self, node: Node | Mapping[str, Any]) -> None:
        """Add a node or replace one (status, eligibility, capacity...).
        Usage recorded on it stays; a node that left is marked ``down``."""
        if not isinstance(node, Node):
            node = Node.from_dict(node)
        pos = self.node_pos.get(node.id)
        if pos is None:
            self.node_pos[node.id] = len(self.nodes)
            self.nodes.append(node)
            self.cap_cpu.append(node.cpu)
            self.cap_mem.append(node.memory)
            self.used_cpu.append(0)
            self.used_mem.append(0)
            self.used_ports.append(set(node.reserved_ports))
            # allocations seen before their node: count them now
            for alloc in self.allocs.values():
                if alloc.node == node.id and alloc.live:
                    self._hold(alloc)
            return
        old = self.nodes[pos]
        self.nodes[pos] = node
        self.cap_cpu[pos] = node.cpu
        self.cap_mem[pos] = node.memory
        if old.reserved_ports != node.reserved_ports:
            ports = self.used_ports[pos]
            ports.difference_update(old.reserved_ports - node.reserved_ports)
            ports.update(node.reserved_ports)
            for alloc in self.allocs.values():  # a port both reserved and used stays used
                if alloc.node == node.id and alloc.live:
                    ports.update(alloc.ports.values())

    def add(self, alloc: Allocation) -> None:
        old = self.allocs.get(alloc.id)
        if old is not None:
            self._release(old)
        self.allocs[alloc.id] = alloc
        self.by_job.setdefault(alloc.job, {})[alloc.id] = alloc
        if alloc.live:
            self._hold(alloc)

    def remove(self, alloc_id: str) -> Allocation | None:
        alloc = self.allocs.pop(alloc_id, None)
        if alloc is not None:
            self._release(alloc)
            job_allocs = self.by_job.get(alloc.job)
            if job_allocs is not None:
                job_allocs.pop(alloc_id, None)
                if not job_allocs:
                    del self.by_job[alloc.job]
        return alloc

    def stop(self, alloc_id: str, *, lost: bool = False) -> Allocation | None:
        """Mark an allocation desired-stop (it stops holding resources);
        returns the previous record so the change can be undone."""
        old = self.allocs.get(alloc_id)
        if old is None:
            return None
        self.add(replace(old, desired="stop", status="lost" if lost else old.status))
        return old

    def apply(self, plan: Plan) -> None:
        """Record a committed plan: its stops and its new allocations."""
        for stop in plan.stops:
            self.stop(stop.alloc_id, lost=stop.lost)
        for place in plan.places:
            self.add(place.to_allocation())

    def node_of(self, alloc: Allocation) -> Node | None:
        pos = self.node_pos.get(alloc.node)
        return None if pos is None else self.nodes[pos]

    def _hold(self, alloc: Allocation) -> None:
        pos = self.node_pos.get(alloc.node)
        if pos is None:
            return
        self.used_cpu[pos] += alloc.cpu
        self.used_mem[pos] += alloc.memory
        if alloc.ports:
            self.used_ports[pos].update(alloc.ports.values())
        counts = self.group_count.setdefault((alloc.job, alloc.group), {})
        counts[pos] = counts.get(pos, 0) + 1
        jcounts = self.job_count.setdefault(alloc.job, {})
        jcounts[pos] = jcounts.get(pos, 0) + 1

    def _release(self, alloc: Allocation) -> None:
        if not alloc.live:
            return
        pos = self.node_pos.get(alloc.node)
        if pos is None:
            return
        self.used_cpu[pos] -= alloc.cpu
        self.used_mem[pos] -= alloc.memory
        if alloc.ports:
            self.used_ports[pos].difference_update(alloc.ports.values())
            self.used_ports[pos].update(self.nodes[pos].reserved_ports)
        for counts, key in (
            (self.group_count.get((alloc.job, alloc.group)), pos),
            (self.job_count.get(alloc.job), pos),
        ):
            if counts is not None:
                left = counts.get(key, 0) - 1
                if left > 0:
                    counts[key] = left
                else:
                    counts.pop(key, None)


# --- constraints ----------------------------------------------------------------


def _node_value(node: Node, attribute: str) -> str | None:
    if attribute == "node.name":
        return node.name
    if attribute == "node.id":
        return node.id
    if attribute == "node.address":
        return node.address
    if attribute == "node.status":
        return node.status
    if attribute.startswith("node.label."):
        return node.labels.get(attribute[11:])
    if attribute.startswith("node.attr."):
        return node.attributes.get(attribute[10:])
    if attribute.startswith("node.driver."):
        return "true" if attribute[12:] in node.drivers else None
    return None


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _compare(op: str, left: str, right: str) -> bool:
    ln, rn = _as_number(left), _as_number(right)
    a: Any
    b: Any
    a, b = (ln, rn) if ln is not None and rn is not None else (left, right)
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _compile_constraint(c: Mapping[str, str]) -> Callable[[Node], bool]:
    attribute, op, value = c["attribute"], c["operator"], c.get("value", "")
    if op == "=":
        return lambda n: _node_value(n, attribute) == value
    if op == "!=":
        return lambda n: _node_value(n, attribute) != value
    if op == "regexp":
        pattern = re.compile(value)
        return lambda n: (v := _node_value(n, attribute)) is not None and bool(pattern.search(v))
    if op in ("set_contains", "set_contains_any"):
        wanted = {v.strip() for v in value.split(",") if v.strip()}
        if op == "set_contains":
            return lambda n: (
                (v := _node_value(n, attribute)) is not None
                and wanted <= {x.strip() for x in v.split(",")}
            )
        return lambda n: (
            (v := _node_value(n, attribute)) is not None
            and bool(wanted & {x.strip() for x in v.split(",")})
        )
    if op == "is_set":
        return lambda n: _node_value(n, attribute) is not None
    if op == "is_not_set":
        return lambda n: _node_value(n, attribute) is None
    if op in ("<", "<=", ">", ">="):
        return lambda n: (v := _node_value(n, attribute)) is not None and _compare(op, v, value)
    raise ValueError(f"unknown constraint operator {op!r}")


def _describe(c: Mapping[str, str]) -> str:
    if c["operator"] in ("is_set", "is_not_set"):
        return f"{c['attribute']} {c['operator']}"
    return f"{c['attribute']} {c['operator']} {c.get('value', '')}"


# --- placement of one group ---------------------------------------------------


class _Tier:
    """Nodes with the same number of replicas of the group: O(1) add,
    remove and random pick."""

    __slots__ = ("members", "pos")

    def __init__(self) -> None:
        self.members: list[int] = []
        self.pos: dict[int, int] = {}

    def add(self, node: int) -> None:
        self.pos[node] = len(self.members)
        self.members.append(node)

    def remove(self, node: int) -> None:
        at = self.pos.pop(node)
        last = self.members.pop()
        if last != node:
            self.members[at] = last
            self.pos[last] = at


class _GroupPlacer:
    def __init__(
        self,
        state: ClusterState,
        job: Mapping[str, Any],
        group: Mapping[str, Any],
        rng: random.Random,
        limit: int,
    ) -> None:
        self.state = state
        self.job_name: str = job["name"]
        self.group_name: str = group["name"]
        self.rng = rng
        self.limit = max(1, limit)
        tasks = group["tasks"]
        self.cpu = sum(int(t["resources"]["cpu"]) for t in tasks)
        self.memory = sum(int(t["resources"]["memory"]) for t in tasks)
        self.static_ports: dict[str, int] = {}
        self.dynamic_ports: list[str] = []
        for task in tasks:
            for port in task.get("ports") or ():
                if port.get("static"):
                    self.static_ports[port["name"]] = int(port["static"])
                else:
                    self.dynamic_ports.append(port["name"])
        self.static_set = frozenset(self.static_ports.values())
        drivers = frozenset(t.get("driver", "docker") for t in tasks)
        constraints = [
            *(job.get("constraints") or ()),
            *(group.get("constraints") or ()),
            *(c for t in tasks for c in t.get("constraints") or ()),
        ]
        self.distinct_hosts = any(c["operator"] == "distinct_hosts" for c in constraints)
        compiled = [
            (_describe(c), _compile_constraint(c))
            for c in constraints
            if c["operator"] != "distinct_hosts"
        ]
        self.filtered: dict[str, int] = {}
        self.exhausted: dict[str, int] = {}
        self.group_counts = state.group_count.get((self.job_name, self.group_name), {})
        self.job_counts = state.job_count.get(self.job_name, {})
        self.tiers: dict[int, _Tier] = {}
        self.evaluated = 0
        for pos, node in enumerate(state.nodes):
            if not node.schedulable:
                if node.status == "down":
                    why = "down"
                elif node.draining:
                    why = "draining"
                elif node.status != "ready":
                    why = node.status
                else:
                    why = "ineligible"
                self._filter(why)
                continue
            if not drivers <= node.drivers:
                self._filter("missing driver " + ",".join(sorted(drivers - node.drivers)))
                continue
            rejected = next((desc for desc, check in compiled if not check(node)), None)
            if rejected is not None:
                self._filter(f"constraint {rejected}")
                continue
            self.evaluated += 1
            tier = self.group_counts.get(pos, 0)
            if self.distinct_hosts and tier > 0:
                self._exhaust("distinct_hosts")
                continue
            bucket = self.tiers.get(tier)
            if bucket is None:
                bucket = self.tiers[tier] = _Tier()
            bucket.add(pos)
        self.tier_order = sorted(self.tiers)

    def _filter(self, why: str) -> None:
        self.filtered[why] = self.filtered.get(why, 0) + 1

    def _exhaust(self, why: str) -> None:
        self.exhausted[why] = self.exhausted.get(why, 0) + 1

    def _evaluate(self, pos: int) -> float | str:
        """The node's score for one more replica (higher: fuller after it,
        fewer allocations of the same job), or why it cannot take one."""
        state = self.state
        cap_cpu = state.cap_cpu[pos]
        cap_mem = state.cap_mem[pos]
        cpu = state.used_cpu[pos] + self.cpu
        mem = state.used_mem[pos] + self.memory
        if cpu > cap_cpu or mem > cap_mem:
            if cpu > cap_cpu and mem > cap_mem:
                return "cpu+memory"
            return "cpu" if cpu > cap_cpu else "memory"
        if self.static_set and not self.static_set.isdisjoint(state.used_ports[pos]):
            used = sorted(self.static_set & state.used_ports[pos])
            return "port " + ",".join(map(str, used))
        score = (cpu / cap_cpu if cap_cpu else 1.0) + (mem / cap_mem if cap_mem else 1.0)
        if self.job_counts:
            score -= JOB_SPREAD_PENALTY * self.job_counts.get(pos, 0)
        return score

    def _pick_ports(self, pos: int) -> dict[str, int] | None:
        ports = dict(self.static_ports)
        if not self.dynamic_ports:
            return ports
        node = self.state.nodes[pos]
        used = self.state.used_ports[pos]
        lo, hi = node.port_range
        span = hi - lo + 1
        taken = set(ports.values())
        rand = self.rng.random
        for name in self.dynamic_ports:
            chosen = None
            for _ in range(32):
                candidate = lo + int(rand() * span)
                if candidate not in used and candidate not in taken:
                    chosen = candidate
                    break
            if chosen is None:  # a crowded range: look at every port once
                chosen = next(
                    (p for p in range(lo, hi + 1) if p not in used and p not in taken), None
                )
                if chosen is None:
                    return None
            taken.add(chosen)
            ports[name] = chosen
        return ports

    def place(self) -> tuple[int, dict[str, int]] | None:
        """The node position and host ports for one more replica, or None
        when no feasible node has room (every candidate is then checked)."""
        rand = self.rng.random
        while self.tier_order:
            tier_no = self.tier_order[0]
            tier = self.tiers[tier_no]
            members = tier.members
            if not members or (self.distinct_hosts and tier_no > 0):
                if members:
                    self.exhausted["distinct_hosts"] = self.exhausted.get(
                        "distinct_hosts", 0
                    ) + len(members)
                del self.tiers[tier_no]
                self.tier_order.pop(0)
                continue
            best = -1
            best_score: float = -math.inf
            if len(members) <= self.limit:
                # A small tier: look at every node (best fit, no sampling).
                for pos in list(members):
                    score = self._evaluate(pos)
                    if score.__class__ is str:
                        tier.remove(pos)
                        self._exhaust(score)  # type: ignore[arg-type]
                        continue
                    if score > best_score:  # type: ignore[operator]
                        best, best_score = pos, score
            else:
                sampled = 0
                while members and sampled < self.limit:
                    pos = members[int(rand() * len(members))]
                    score = self._evaluate(pos)
                    if score.__class__ is str:
                        tier.remove(pos)
                        self._exhaust(score)  # type: ignore[arg-type]
                        continue
                    sampled += 1
                    if score > best_score:  # type: ignore[operator]
                        best, best_score = pos, score
            if best < 0:
                continue  # the tier emptied; the loop moves on
            ports = self._pick_ports(best)
            if ports is None:
                tier.remove(best)
                self._exhaust("ports")
                continue
            tier.remove(best)
            nxt = self.tiers.get(tier_no + 1)
            if nxt is None:
                nxt = self.tiers[tier_no + 1] = _Tier()
                self.tier_order.insert(1, tier_no + 1)
            nxt.add(best)
            return best, ports
        return None

    def failure_reason(self) -> tuple[str, dict[str, Any]]:
        filtered_total = sum(self.filtered.values())
        metrics: dict[str, Any] = {
            "nodes_total": len(self.state.nodes),
            "nodes_evaluated": self.evaluated,
            "nodes_filtered": dict(sorted(self.filtered.items())),
            "nodes_exhausted": dict(sorted(self.exhausted.items())),
            "ask": {"cpu": self.cpu, "memory": self.memory},
        }
        if not self.state.nodes:
            return "no nodes in the cluster", metrics
        filtered_txt = ", ".join(
            f"{n} {why}" if not why.startswith("constraint") else f"{n} by {why}"
            for why, n in sorted(self.filtered.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        if self.evaluated == 0:
            return f"no node is feasible ({filtered_txt})", metrics
        ex = self.exhausted
        cpu_short = ex.get("cpu", 0) + ex.get("cpu+memory", 0)
        mem_short = ex.get("memory", 0) + ex.get("cpu+memory", 0)
        port_busy = sum(v for k, v in ex.items() if k.startswith("port "))
        parts: list[str] = []
        if cpu_short and mem_short:
            main = f"no node has {self.cpu} MHz CPU and {self.memory} MB free"
            parts.append(f"{cpu_short} short of CPU, {mem_short} short of memory")
        elif mem_short:
            main = f"no node has {self.memory} MB free"
        elif cpu_short:
            main = f"no node has {self.cpu} MHz CPU free"
        elif port_busy:
            ports = ", ".join(str(p) for p in sorted(self.static_set))
            main = f"static port {ports} is in use on every feasible node"
        elif "distinct_hosts" in ex:
            main = "every feasible node already runs this group (distinct_hosts)"
        else:
            main = "no dynamic port left on any feasible node"
        if cpu_short or mem_short:
            if port_busy:
                parts.append(f"{port_busy} with static port in use")
            if ex.get("distinct_hosts"):
                parts.append(f"{ex['distinct_hosts']} already running this group")
            if ex.get("ports"):
                parts.append(f"{ex['ports']} out of dynamic ports")
        parts.insert(0, f"{self.evaluated} node{'s' if self.evaluated != 1 else ''} evaluated")
        if filtered_total:
            parts.append(f"{filtered_total} filtered: {filtered_txt}")
        return f"{main} ({'; '.join(parts)})", metrics


# --- reconciliation -------------------------------------------------------------


def _default_seed(job_name: str, version: int, allocs: int) -> int:
    return zlib.crc32(f"{job_name}/{version}/{allocs}".encode())


def _new_id() -> str:
    return os.urandom(16).hex()


def schedule(
    job: Mapping[str, Any],
    nodes: Iterable[Node | Mapping[str, Any]],
    allocations: Iterable[Allocation | Mapping[str, Any]],
    *,
    seed: int | None = None,
    new_id: Callable[[], str] | None = None,
    limit: int = DEFAULT_CANDIDATE_LIMIT,
) -> Plan:
    """The plan that moves ``job`` (normalized, with ``version``) from the
    given allocations towards its desired state on the given nodes."""
    return schedule_on(job, ClusterState(nodes, allocations), seed=seed, new_id=new_id, limit=limit)


def schedule_on(
    job: Mapping[str, Any],
    state: ClusterState,
    *,
    seed: int | None = None,
    new_id: Callable[[], str] | None = None,
    limit: int = DEFAULT_CANDIDATE_LIMIT,
    commit: bool = False,
) -> Plan:
    """:func:`schedule` on a prebuilt :class:`ClusterState`.

    The state is used as scratch space and restored afterwards, unless
    ``commit`` is true: then the plan stays applied (as :meth:`ClusterState.apply`
    would), which lets a caller that commits every plan skip the rebuild."""
    name: str = job["name"]
    version = int(job.get("version", 0) or 0)
    mine = list(state.by_job.get(name, {}).values())
    rng = random.Random(seed if seed is not None else _default_seed(name, version, len(mine)))
    make_id = new_id or _new_id
    plan = Plan(job=name, job_version=version)
    undo: list[tuple[str, Any]] = []
    stopping = bool(job.get("stop")) or job.get("status") == "dead"
    groups = {g["name"]: g for g in job.get("groups") or ()}
    by_group: dict[str, list[Allocation]] = {}
    for alloc in mine:
        by_group.setdefault(alloc.group, []).append(alloc)

    def do_stop(alloc: Allocation, reason: str, lost: bool = False) -> None:
        plan.stops.append(Stop(alloc.id, alloc.job, alloc.group, alloc.node, reason, lost))
        undo.append(("stop", state.stop(alloc.id, lost=lost)))

    try:
        for gname in sorted(by_group):
            if gname not in groups or stopping:
                why = "job stopped" if stopping else f"group '{gname}' removed from the job"
                for alloc in by_group[gname]:
                    if alloc.live:
                        do_stop(alloc, why)
        if not stopping:
            for group in job.get("groups") or ():
                _reconcile_group(
                    job, version, group, by_group.get(group["name"], []), state, plan,
                    rng, make_id, limit, do_stop, undo,
                )  # fmt: skip
    finally:
        if not commit:
            for kind, item in reversed(undo):
                if kind == "stop":
                    if item is not None:
                        state.add(item)
                else:
                    state.remove(item)
    return plan


def _reconcile_group(
    job: Mapping[str, Any],
    version: int,
    group: Mapping[str, Any],
    allocs: Sequence[Allocation],
    state: ClusterState,
    plan: Plan,
    rng: random.Random,
    make_id: Callable[[], str],
    limit: int,
    do_stop: Callable[..., None],
    undo: list[tuple[str, Any]],
) -> None:
    gname: str = group["name"]
    count = int(group.get("count", 1))
    is_service = job.get("type", "service") != "batch"
    max_parallel = int((group.get("update") or {}).get("max_parallel", 1))

    # 1. Lost: live allocations on a down or unknown node.
    live: list[Allocation] = []
    for alloc in allocs:
        if not alloc.live:
            continue
        node = state.node_of(alloc)
        if node is None or node.status == "down":
            where = "is down" if node is not None else "is gone"
            do_stop(alloc, f"node {node.name if node else alloc.node} {where}", lost=True)
        else:
            live.append(alloc)

    # 2. Slots: a migration in progress (old on a draining node plus its
    # not-yet-healthy replacement) is one slot; a healthy replacement lets
    # the old one go.
    by_id = {a.id: a for a in live}
    replacement_of: dict[str, Allocation] = {}
    for alloc in live:
        if alloc.previous is not None and alloc.previous in by_id:
            replacement_of[alloc.previous] = alloc
    slots: list[Allocation] = []  # the representative of each slot
    gone: set[str] = set()  # stopped by this plan
    for alloc in live:
        new = replacement_of.get(alloc.id)
        if new is None:
            slots.append(alloc)
        elif new.healthy is True:
            node = state.node_of(new)
            do_stop(alloc, f"replaced by {new.id} on {node.name if node else new.node}")
            gone.add(alloc.id)

    def paired_old(alloc: Allocation) -> Allocation | None:
        """The old allocation a not-yet-healthy replacement stands in for."""
        if alloc.previous is None or alloc.previous in gone:
            return None
        return by_id.get(alloc.previous)

    # (a replacement is itself a slot, found in `live`; its old one was not
    # added above, so each pair counts once)

    done = 0
    if not is_service:
        done = sum(
            1
            for a in allocs
            if a.status == "complete" and a.job_version == version and a.desired == "run"
        )
    want = max(0, count - done)

    # 3. Scale down: stop whole slots, most dispensable first.
    if len(slots) > want:
        extra = len(slots) - want
        counts = dict(state.group_count.get((job["name"], gname), {}))
        heap: list[tuple[tuple[int, ...], int, Allocation]] = []

        def key(alloc: Allocation) -> tuple[int, ...]:
            old = paired_old(alloc)
            node = state.node_of(old if old is not None else alloc)
            pos = state.node_pos.get(alloc.node, -1)
            return (
                0 if node is not None and node.draining else 1,
                0 if alloc.job_version != version else 1,
                0 if alloc.healthy is False else 1,
                0 if alloc.status == "pending" else 1,
                -counts.get(pos, 0),
                -alloc.index,
            )

        for n, alloc in enumerate(slots):
            heapq.heappush(heap, (key(alloc), n, alloc))
        stopped: set[str] = set()
        while extra and heap:
            k, n, alloc = heapq.heappop(heap)
            fresh = key(alloc)
            if fresh != k:  # its node lost a replica since: re-rank
                heapq.heappush(heap, (fresh, n, alloc))
                continue
            reason = f"scaled down to {count}" if done == 0 else "batch job has enough runs"
            do_stop(alloc, reason)
            stopped.add(alloc.id)
            old = paired_old(alloc)
            if old is not None:
                do_stop(old, reason)
                stopped.add(old.id)
            pos = state.node_pos.get(alloc.node, -1)
            counts[pos] = counts.get(pos, 0) - 1
            extra -= 1
        slots = [a for a in slots if a.id not in stopped]
        gone |= stopped

    # 4. Requests: missing replicas first, then rolling replacements.
    requests: list[tuple[int, str | None, str]] = []  # (index, previous, reason)
    used_indexes = {a.index for a in slots}
    missing = want - len(slots)
    next_index = 0
    lost_any = any(s.lost for s in plan.stops if s.group == gname)
    for _ in range(max(0, missing)):
        while next_index in used_indexes:
            next_index += 1
        used_indexes.add(next_index)
        requests.append((next_index, None, "lost" if lost_any else "new"))

    if is_service:
        in_flight = 0
        halted = ""
        for alloc in allocs:
            if alloc.job_version != version or alloc.previous is None:
                continue
            if alloc.healthy is False or (alloc.status == "failed" and alloc.desired == "run"):
                halted = f"replacement {alloc.id} is unhealthy; submit a new version to continue"
            elif alloc.live and alloc.healthy is not True:
                in_flight += 1
        # A slot whose replacement is still in flight is left alone.
        settled = [a for a in slots if paired_old(a) is None]
        migrate = [a for a in settled if (n := state.node_of(a)) is not None and n.draining]
        migrating = {a.id for a in migrate}
        outdated = [a for a in settled if a.job_version != version and a.id not in migrating]
        outdated.sort(key=lambda a: (a.healthy is not False, a.status != "pending", a.index))
        budget = len(migrate) + len(outdated)
        if max_parallel > 0:
            budget = min(budget, max(0, max_parallel - in_flight))
        if halted and outdated:
            plan.halted[gname] = halted
            budget = min(budget, len(migrate))
        for alloc in migrate[:budget]:
            requests.append((alloc.index, alloc.id, "migrate"))
        for alloc in outdated[: max(0, budget - len(migrate))]:
            do_stop(alloc, f"job updated to version {version}")
            requests.append((alloc.index, alloc.id, "update"))
        waiting = len(migrate) + len(outdated) - budget
        if waiting > 0:
            plan.deferred[gname] = waiting

    if not requests:
        return
    placer = _GroupPlacer(state, job, group, rng, limit)
    for n, (index, previous, reason) in enumerate(requests):
        spot = placer.place()
        if spot is None:
            why, metrics = placer.failure_reason()
            plan.failures.append(Failure(gname, len(requests) - n, why, metrics))
            return
        pos, ports = spot
        node = state.nodes[pos]
        placement = Placement(
            alloc_id=make_id(),
            job=job["name"],
            group=gname,
            index=index,
            node_id=node.id,
            node_name=node.name,
            job_version=version,
            cpu=placer.cpu,
            memory=placer.memory,
            ports=ports,
            previous=previous,
            reason=reason,
        )
        plan.places.append(placement)
        state.add(placement.to_allocation())
        undo.append(("place", placement.alloc_id))


def stop_job(job_name: str, state: ClusterState | Iterable[Allocation | Mapping[str, Any]]) -> Plan:
    """Stop every live allocation of a deleted job (on any node, down or not)."""
    if not isinstance(state, ClusterState):
        state = ClusterState((), state)
    plan = Plan(job=job_name, job_version=0)
    for alloc in state.by_job.get(job_name, {}).values():
        if alloc.live:
            plan.stops.append(Stop(alloc.id, alloc.job, alloc.group, alloc.node, "job deleted"))
    return plan
