"""The scheduler: (job, nodes, allocations) -> Plan, pure and fast.

The leader's scheduling controller reads the state at index N, calls
:func:`schedule` for a job, and proposes the plan's stops and placements as
commands. Nothing here does I/O, reads a clock or touches replicated state,
so it is unit- and property-tested and benchmarked on thousands of simulated
nodes (``bench/bench_scheduler.py``).

What a plan does, per task group of the job (the job is normalized by
:mod:`domain.jobspec` and carries its ``version``):

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

from domain.scheduler.cluster_state import ClusterState
from domain.scheduler.model import (
    DEFAULT_PORT_RANGE,
    Allocation,
    Failure,
    Node,
    Placement,
    Plan,
    Stop,
)
from domain.scheduler.model import LIVE_STATUSES as LIVE_STATUSES
from domain.scheduler.placement import DEFAULT_CANDIDATE_LIMIT
from domain.scheduler.placement import JOB_SPREAD_PENALTY as JOB_SPREAD_PENALTY
from domain.scheduler.reconcile import schedule, schedule_on, stop_job

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
