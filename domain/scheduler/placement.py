"""Placement of one task group: feasibility, spread tiers, scoring, ports.

See the package docstring (:mod:`domain.scheduler`) for the algorithm.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import Any

from domain.scheduler.cluster_state import ClusterState
from domain.scheduler.constraints import compile_constraint, describe_constraint

DEFAULT_CANDIDATE_LIMIT = 4
JOB_SPREAD_PENALTY = 0.5  # per allocation of the same job (other group) on a node


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


class GroupPlacer:
    """Places the replicas of one group, one :meth:`place` call each, on a
    :class:`ClusterState` the caller updates between calls; counts why nodes
    were filtered out or could not fit, for :meth:`failure_reason`."""

    def __init__(
        self,
        state: ClusterState,
        job: Mapping[str, Any],
        group: Mapping[str, Any],
        rng: Callable[[], random.Random],
        limit: int,
    ) -> None:
        self.state = state
        self.job_name: str = job["name"]
        self.group_name: str = group["name"]
        self.rng = rng  # seeded on first use: most failing passes never need it
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
            (describe_constraint(c), compile_constraint(c))
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

    def _exhaust(self, why: str, count: int = 1) -> None:
        self.exhausted[why] = self.exhausted.get(why, 0) + count

    def _drop(self, tier: _Tier, pos: int, why: str) -> None:
        """The node cannot take the group: out of its tier for good."""
        tier.remove(pos)
        self._exhaust(why)

    def _score(self, tier: _Tier, pos: int) -> float | None:
        """The node's score for one more replica (higher: fuller after it,
        fewer allocations of the same job), or None when it cannot take one
        (it is then dropped from ``tier``)."""
        state = self.state
        cap_cpu = state.cap_cpu[pos]
        cap_mem = state.cap_mem[pos]
        cpu = state.used_cpu[pos] + self.cpu
        mem = state.used_mem[pos] + self.memory
        if cpu > cap_cpu or mem > cap_mem:
            if cpu > cap_cpu and mem > cap_mem:
                why = "cpu+memory"
            else:
                why = "cpu" if cpu > cap_cpu else "memory"
        elif self.static_set and not self.static_set.isdisjoint(state.used_ports[pos]):
            used = sorted(self.static_set & state.used_ports[pos])
            why = "port " + ",".join(map(str, used))
        else:
            score = (cpu / cap_cpu if cap_cpu else 1.0) + (mem / cap_mem if cap_mem else 1.0)
            if self.job_counts:
                score -= JOB_SPREAD_PENALTY * self.job_counts.get(pos, 0)
            return score
        self._drop(tier, pos, why)
        return None

    def _pick_ports(self, pos: int) -> dict[str, int] | None:
        ports = dict(self.static_ports)
        if not self.dynamic_ports:
            return ports
        node = self.state.nodes[pos]
        used = self.state.used_ports[pos]
        lo, hi = node.port_range
        span = hi - lo + 1
        taken = set(ports.values())
        rand = self.rng().random
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
        if not self.tier_order:
            return None
        rand = self.rng().random
        while self.tier_order:
            tier_no = self.tier_order[0]
            tier = self.tiers[tier_no]
            members = tier.members
            if not members or (self.distinct_hosts and tier_no > 0):
                if members:
                    self._exhaust("distinct_hosts", len(members))
                del self.tiers[tier_no]
                self.tier_order.pop(0)
                continue
            best = -1
            best_score: float = -math.inf
            if len(members) <= self.limit:
                # A small tier: look at every node (best fit, no sampling).
                for pos in list(members):
                    score = self._score(tier, pos)
                    if score is not None and score > best_score:
                        best, best_score = pos, score
            else:
                sampled = 0
                while members and sampled < self.limit:
                    pos = members[int(rand() * len(members))]
                    score = self._score(tier, pos)
                    if score is None:
                        continue
                    sampled += 1
                    if score > best_score:
                        best, best_score = pos, score
            if best < 0:
                continue  # the tier emptied; the loop moves on
            ports = self._pick_ports(best)
            if ports is None:
                self._drop(tier, best, "ports")
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
