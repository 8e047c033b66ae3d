"""The usage index: nodes plus per-node cpu, memory, ports and replica counts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from domain.scheduler.model import Allocation, Node, Plan


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
            for alloc in self._live_on(node.id):
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
            for alloc in self._live_on(node.id):  # a port both reserved and used stays used
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

    def _live_on(self, node_id: str) -> Iterator[Allocation]:
        """The live allocations recorded on a node."""
        for alloc in self.allocs.values():
            if alloc.node == node_id and alloc.live:
                yield alloc

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
