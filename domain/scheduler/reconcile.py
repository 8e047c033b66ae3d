"""Reconciliation: the plan that moves a job towards its desired state.

See the package docstring (:mod:`domain.scheduler`) for what a plan does
per task group (lost, scale down, scale up, rolling update, drain).
"""

from __future__ import annotations

import heapq
import os
import random
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from domain.jobspec.groups import CANARY_STRATEGIES
from domain.scheduler.cluster_state import ClusterState
from domain.scheduler.model import Allocation, Failure, Node, Placement, Plan, Stop
from domain.scheduler.placement import DEFAULT_CANDIDATE_LIMIT, GroupPlacer


def _default_seed(job_name: str, version: int, allocs: int) -> int:
    return zlib.crc32(f"{job_name}/{version}/{allocs}".encode())


class _LazyRandom:
    """The plan's random source, seeded only when a placement needs it (most
    passes place nothing, and seeding costs more than the rest of such a pass)."""

    __slots__ = ("_seed", "_rng")

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._rng: random.Random | None = None

    def get(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random(self._seed)
        return self._rng


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
    hold: str | None = None,
) -> Plan:
    """The plan that moves ``job`` (normalized, with ``version``) from the
    given allocations towards its desired state on the given nodes.

    ``hold`` (why, e.g. its deployment is paused or failed) keeps the rolling
    update from replacing more outdated allocations; the missing replicas,
    lost ones and migrations are still placed."""
    return schedule_on(
        job, ClusterState(nodes, allocations), seed=seed, new_id=new_id, limit=limit, hold=hold
    )


def schedule_on(
    job: Mapping[str, Any],
    state: ClusterState,
    *,
    seed: int | None = None,
    new_id: Callable[[], str] | None = None,
    limit: int = DEFAULT_CANDIDATE_LIMIT,
    commit: bool = False,
    hold: str | None = None,
) -> Plan:
    """:func:`schedule` on a prebuilt :class:`ClusterState`.

    The state is used as scratch space and restored afterwards, unless
    ``commit`` is true: then the plan stays applied (as :meth:`ClusterState.apply`
    would), which lets a caller that commits every plan skip the rebuild."""
    name: str = job["name"]
    version = int(job.get("version", 0) or 0)
    mine = list(state.by_job.get(name, {}).values())
    rng = _LazyRandom(seed if seed is not None else _default_seed(name, version, len(mine)))
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
                    rng, make_id, limit, do_stop, undo, hold,
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
    rng: _LazyRandom,
    make_id: Callable[[], str],
    limit: int,
    do_stop: Callable[..., None],
    undo: list[tuple[str, Any]],
    hold: str | None = None,
) -> None:
    gname: str = group["name"]
    if allocs:
        requests = _requests(job, version, group, allocs, state, plan, do_stop, hold)
    else:  # a new group (or one whose allocations were all collected)
        requests = [(index, None, "new") for index in range(int(group.get("count", 1)))]
    if not requests:
        return
    placer = GroupPlacer(state, job, group, rng.get, limit)
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


def _requests(
    job: Mapping[str, Any],
    version: int,
    group: Mapping[str, Any],
    allocs: Sequence[Allocation],
    state: ClusterState,
    plan: Plan,
    do_stop: Callable[..., None],
    hold: str | None = None,
) -> list[tuple[int, str | None, str]]:
    """Steps 1-4 for a group with allocations: what to stop now, and the
    replicas to place as (index, previous allocation, reason)."""
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
    for old_id, new in list(replacement_of.items()):
        if new.job_version != version and new.healthy is not True:
            # The replacement of a version the job left (a rollout superseded
            # or rolled back) that never became healthy: the old one stays.
            do_stop(new, f"replacement for version {new.job_version}, the job is at {version}")
            gone.add(new.id)
            del replacement_of[old_id]
    for alloc in live:
        if alloc.id in gone:
            continue
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
    canaries = canaries_wanted(job, version, group, slots)
    want += canaries
    # promoted: the old replicas beyond `count` make room for the new ones
    promoted_over = (
        job.get("promoted_version") == version
        and (group.get("update") or {}).get("strategy") in CANARY_STRATEGIES
    )

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
            if promoted_over and alloc.job_version != version:
                reason = f"replaced by the promoted version {version}"
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
        requests.append((next_index, None, "lost" if lost_any else "canary" if canaries else "new"))

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
        if (halted or hold) and outdated:
            plan.halted[gname] = hold or halted
            budget = min(budget, len(migrate))
        elif canaries:  # the old replicas stay until the deployment is promoted
            budget = min(budget, len(migrate))
        for alloc in migrate[:budget]:
            requests.append((alloc.index, alloc.id, "migrate"))
        for alloc in outdated[: max(0, budget - len(migrate))]:
            do_stop(alloc, f"job updated to version {version}")
            requests.append((alloc.index, alloc.id, "update"))
        waiting = len(migrate) + len(outdated) - budget
        if waiting > 0:
            plan.deferred[gname] = waiting

    return requests


def rollout_canaries(group: Mapping[str, Any]) -> int:
    """How many new-version replicas a canary strategy tries first: its
    ``canary``, at most the group's count (rainbow: the group's whole count)."""
    update = group.get("update") or {}
    count = int(group.get("count", 1))
    if update.get("strategy") == "rainbow":
        return count
    return min(int(update.get("canary", 1)), count)  # never more than the group runs


def canaries_wanted(
    job: Mapping[str, Any], version: int, group: Mapping[str, Any], slots: Sequence[Allocation]
) -> int:
    """How many new-version replicas a canary or blue-green group runs beside
    its old ones: its ``canary`` count while replicas of an older version are
    live and the version is not promoted (``promoted_version`` in the job,
    written by `deployment.promote`), else 0. Once promoted the group wants
    ``count`` again: scaling down stops old replicas first, so the canaries
    count as already replaced (blue-green: the whole old set stops at once)
    and the rest rolls as a rolling update does."""
    update = group.get("update") or {}
    if job.get("type", "service") == "batch" or update.get("strategy") not in CANARY_STRATEGIES:
        return 0
    if job.get("promoted_version") == version:
        return 0
    if not any(a.job_version != version for a in slots):
        return 0  # a first version (or a finished rollout) has nothing to compare with
    return rollout_canaries(group)


def stop_job(job_name: str, state: ClusterState | Iterable[Allocation | Mapping[str, Any]]) -> Plan:
    """Stop every live allocation of a deleted job (on any node, down or not)."""
    if not isinstance(state, ClusterState):
        state = ClusterState((), state)
    plan = Plan(job=job_name, job_version=0)
    for alloc in state.by_job.get(job_name, {}).values():
        if alloc.live:
            plan.stops.append(Stop(alloc.id, alloc.job, alloc.group, alloc.node, "job deleted"))
    return plan
