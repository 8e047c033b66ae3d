"""Which allocations an ingress route sends requests to (pure).

An allocation takes traffic when it runs, is meant to, and every task with a
check passes it now (the live check, not the sticky deployment health):
:func:`serving`. Of a group's serving allocations, the group's update
strategy says which versions a route sends to (:func:`routed`):

* ``rolling`` and ``canary``: every serving allocation, whatever its version
  (a canary takes its share beside the old replicas);
* ``blue-green``: the old set until the job's version is promoted, then the
  new set only, so the switch is one change of every node's upstreams;
* ``rainbow``: the newest version with a serving allocation; the older ones
  keep the connections they hold (nginx's old workers keep them through a
  reload) until they close.

Whichever the rule, a group none of whose chosen allocations serves falls
back to every serving one: a request answered by another version beats a 503.

A running allocation of a routed group that is stopped is *drained*: its
stop records the raft index (``ingress_drain_index``), the render model lists
it (so every node's model changes), every node's ingress acknowledges the
model it applied, and the agent stops the tasks once every ingress node has
applied a model at or after that index (:func:`ingress_released`): no request
reaches a stopping task.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from raft.fsm_allocs import DRAIN_INDEX, TERMINAL


def serving(alloc: Mapping[str, Any]) -> bool:
    """Whether an allocation takes traffic: it runs, is meant to, and every
    task with a check passes it now."""
    if alloc.get("status") != "running" or alloc.get("desired_status") != "run":
        return False
    tasks = (alloc.get("group_spec") or {}).get("tasks") or []
    states = alloc.get("task_states") or {}
    for task in tasks:
        if task.get("check") and (states.get(task["name"]) or {}).get("check_ok") is not True:
            return False
    return True


def _strategy(job: Mapping[str, Any] | None, group: str) -> str:
    for g in (job or {}).get("groups") or ():
        if g.get("name") == group:
            return str((g.get("update") or {}).get("strategy", "rolling"))
    return "rolling"


def routed(
    job: Mapping[str, Any] | None, group: str, allocations: Iterable[Mapping[str, Any]]
) -> set[str]:
    """The ids of the group's allocations a route sends requests to, by the
    group's strategy (see the module docstring)."""
    live = [a for a in allocations if a.get("group") == group and serving(a)]
    if not live:
        return set()
    strategy = _strategy(job, group)
    version = int((job or {}).get("version", 0) or 0)
    chosen = live
    if strategy == "blue-green":
        promoted = (job or {}).get("promoted_version") == version
        chosen = [a for a in live if (a.get("job_version") == version) == promoted]
    elif strategy == "rainbow":
        newest = max(int(a.get("job_version", 0) or 0) for a in live)
        chosen = [a for a in live if a.get("job_version") == newest]
    return {a["id"] for a in (chosen or live)}


def draining_now(alloc: Mapping[str, Any]) -> bool:
    """Stopped while it ran, and not known to be done."""
    return (
        isinstance(alloc.get(DRAIN_INDEX), int)
        and alloc.get("desired_status") == "stop"
        and alloc.get("status") not in TERMINAL
    )


def ingress_released(
    alloc: Mapping[str, Any],
    acks: Mapping[str, int],
    ingress_nodes: Iterable[str],
) -> bool:
    """Whether every node whose ingress serves (``ingress_nodes``) has
    applied a model at or after the allocation's drain index (``acks``: node
    id -> the index of the last model it applied). An allocation stopped
    without a drain index is released at once."""
    index = alloc.get(DRAIN_INDEX)
    if not isinstance(index, int):
        return True
    return all(acks.get(node, 0) >= index for node in ingress_nodes)
