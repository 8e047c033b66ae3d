"""FSM operations on allocations: plans from the scheduler, agent reports, stops.

An allocation document has what the cluster wants (`desired_status`: run |
stop) and what its node reports (`status`: pending | running | complete |
failed | lost, `task_states`, `healthy`), plus a bounded event timeline.

A user's restart is replicated as a request the node acts on: `alloc.restart`
sets `restart_requested: {"index": <raft index>, "task": <name or None>}`;
the node's agent sees it in its allocation watch, restarts the tasks in place
and reports `restart_handled: <that index>`, so a request is acted on once,
even by an agent that restarted in between.

Stopping a running allocation records the stop's raft index as
`ingress_drain_index`: when a route serves its group, its agent stops the
tasks only once every node's ingress applied a model at or after it
(domain.ingress_routing).
"""

from __future__ import annotations

from typing import Any

from raft.changes import Changes
from raft.fsm_results import fail, ok
from raft.state import State

CLIENT_STATUSES = ("pending", "running", "complete", "failed", "lost")
TERMINAL = ("complete", "failed", "lost")
# Set on the stop of a running allocation: the raft index of that stop, which
# every node's ingress must have applied before its tasks stop
# (domain.ingress_routing).
DRAIN_INDEX = "ingress_drain_index"
# Set when the scheduler stops a running allocation of a rainbow group: how
# many seconds (its drain_timeout) it may keep the connections it holds.
DRAIN_CONNECTIONS = "drain_connections"
MAX_EVENTS = 30


def _event(ts: int, kind: str, message: str) -> dict[str, Any]:
    return {"ts": ts, "type": kind, "message": message}


def _put(state: State, changes: Changes, doc: dict[str, Any], index: int) -> None:
    doc["modify_index"] = index
    state.changed_jobs.add(doc["job"])
    table = state.table("allocations")
    before = table.get(doc["id"])
    if before is None:
        state.index_alloc(doc)
    changes.wrote("allocations", doc["id"], before)
    table[doc["id"]] = doc
    state.touch("allocations", index)


def _with_events(doc: dict[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*doc.get("events", ()), *events][-MAX_EVENTS:]


def mark_stop(
    state: State,
    changes: Changes,
    alloc: dict[str, Any],
    reason: str,
    ts: int,
    index: int,
    lost: bool = False,
    keep_connections: float | None = None,
) -> None:
    """Desired stop (the agent stops it and reports); `lost` when its node is
    gone; `keep_connections`: seconds it may keep its open connections."""
    if alloc.get("desired_status") == "stop" and not lost:
        return
    doc = dict(alloc, desired_status="stop", desired_reason=reason)
    if lost and alloc.get("status") not in TERMINAL:
        doc["status"] = "lost"
    elif alloc.get("status") == "running":
        doc[DRAIN_INDEX] = index
        if keep_connections:
            doc[DRAIN_CONNECTIONS] = keep_connections
    doc["events"] = _with_events(alloc, [_event(ts, "lost" if lost else "stop", reason)])
    _put(state, changes, doc, index)


def _group_spec(job: dict[str, Any] | None, group: str) -> dict[str, Any] | None:
    for g in (job or {}).get("groups") or ():
        if g.get("name") == group:
            return g
    return None


def _rainbow_drain(job: dict[str, Any] | None, group: str) -> float | None:
    """A rainbow group's drain_timeout (stated by every rainbow `update`)
    while its job runs."""
    if job is None or job.get("stop"):
        return None
    update = (_group_spec(job, group) or {}).get("update") or {}
    if update.get("strategy") != "rainbow":
        return None
    return update.get("drain_timeout")


def plan_apply(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    """Apply a scheduler plan, unless the job changed since it was computed."""
    name = cmd.get("job")
    job = state.table("jobs").get(name)
    places, stops = cmd.get("places") or [], cmd.get("stops") or []
    if places and (job is None or job.get("job_modify_index") != cmd.get("job_modify_index")):
        return fail(409, "stale_plan", f"job '{name}' changed since the plan was computed")
    allocs = state.table("allocations")
    nodes = state.table("nodes")
    ts = cmd.get("ts", 0)
    for stop in stops:
        alloc = allocs.get(stop.get("id"))
        if alloc is not None:
            mark_stop(
                state,
                changes,
                alloc,
                str(stop.get("reason", "stopped by the scheduler")),
                ts,
                index,
                lost=bool(stop.get("lost")),
                keep_connections=_rainbow_drain(job, alloc["group"]),
            )
    for p in places:
        node = nodes.get(p.get("node"))
        spec = _group_spec(job, p.get("group"))
        if node is None or spec is None or p.get("id") in allocs:
            continue  # validated on the leader; a plan never half-fails an apply
        doc = {
            "id": p["id"],
            "name": p.get("name"),
            "job": name,
            "job_type": job.get("type", "service"),  # type: ignore[union-attr]
            "group": p["group"],
            "index": p.get("index", 0),
            "node": p["node"],
            "node_name": node.get("name"),
            "job_version": p.get("job_version", 0),
            "resources": p.get("resources", {}),
            "ports": p.get("ports", {}),
            "previous_alloc": p.get("previous_alloc"),
            "group_spec": spec,
            "desired_status": "run",
            "desired_reason": None,
            "status": "pending",
            "task_states": {},
            "healthy": None,
            "create_index": index,
            "create_time": ts,
            "events": [
                _event(ts, "placed", f"placed on {node.get('name')} ({p.get('reason', 'new')})")
            ],
        }
        _put(state, changes, doc, index)
    status = {
        "failures": cmd.get("failures") or [],
        "deferred": cmd.get("deferred") or {},
        "halted": cmd.get("halted") or {},
        "job_version": cmd.get("job_version"),
    }
    table = state.table("job_status")
    if job is not None and table.get(name) != {**status, "index": table.get(name, {}).get("index")}:
        changes.wrote("job_status", name, table.get(name))
        table[name] = {**status, "index": index}
        state.touch("job_status", index)
    return ok(placed=len(places), stopped=len(stops))


def alloc_update(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    """What a node reports about its allocations (batched)."""
    node = cmd.get("node")
    allocs = state.table("allocations")
    applied, refused = 0, []
    for u in cmd.get("updates") or []:
        alloc = allocs.get(u.get("id")) if isinstance(u, dict) else None
        if alloc is None or alloc["node"] != node:
            refused.append(u.get("id") if isinstance(u, dict) else None)
            continue
        doc = dict(alloc)
        status = u.get("status")
        if status in CLIENT_STATUSES and not (alloc["status"] == "lost" and status != "lost"):
            doc["status"] = status
        if isinstance(u.get("task_states"), dict):
            doc["task_states"] = u["task_states"]
        if "healthy" in u and u["healthy"] in (True, False, None):
            doc["healthy"] = u["healthy"]
            if u["healthy"] is True and alloc.get("healthy") is not True:
                doc["healthy_at"] = cmd.get("ts", 0)  # a rollout's stagger counts from it
        connections = u.get("connections")
        if isinstance(connections, int) and not isinstance(connections, bool) and connections >= 0:
            doc["connections"] = connections  # a rainbow drain's open connections
        handled = u.get("restart_handled")
        if isinstance(handled, int) and not isinstance(handled, bool):
            doc["restart_handled"] = max(handled, alloc.get("restart_handled") or 0)
        events = [e for e in u.get("events") or [] if isinstance(e, dict)]
        if events:
            doc["events"] = _with_events(alloc, events)
        doc["client_updated_at"] = cmd.get("ts", 0)
        _put(state, changes, doc, index)
        applied += 1
    return ok(applied=applied, refused=refused)


def alloc_stop(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    alloc = state.table("allocations").get(cmd.get("id"))
    if alloc is None:
        return fail(404, "allocation_not_found", f"allocation '{cmd.get('id')}' does not exist")
    reason = str(cmd.get("reason") or "stopped by a user")
    mark_stop(state, changes, alloc, reason, cmd.get("ts", 0), index)
    return ok(allocation=state.table("allocations")[alloc["id"]])


def restart_refusal(alloc: dict[str, Any], task: Any) -> dict[str, Any] | None:
    """Why ``alloc`` cannot be restarted now (``task``: only that task), or
    None. The API asks too, so a bad request costs no raft entry."""
    if alloc.get("desired_status") != "run" or alloc.get("status") != "running":
        return fail(
            409,
            "allocation_not_running",
            f"allocation '{alloc['id']}' is {alloc.get('status')} (desired "
            f"{alloc.get('desired_status')}): only a running allocation can be restarted",
        )
    names = [t.get("name") for t in (alloc.get("group_spec") or {}).get("tasks") or ()]
    if task is not None and task not in names:
        return fail(
            400,
            "invalid_field",
            f"task: allocation '{alloc['id']}' has no task '{task}' "
            f"(its tasks: {', '.join(map(str, names)) or 'none'})",
        )
    return None


def alloc_restart(
    state: State, cmd: dict[str, Any], index: int, changes: Changes
) -> dict[str, Any]:
    """A user asks the node to restart a running allocation's tasks (``task``:
    only that one) in place: same allocation, same node."""
    alloc = state.table("allocations").get(cmd.get("id"))
    if alloc is None:
        return fail(404, "allocation_not_found", f"allocation '{cmd.get('id')}' does not exist")
    task = cmd.get("task")
    refused = restart_refusal(alloc, task)
    if refused is not None:
        return refused
    event = _event(cmd.get("ts", 0), "restart_requested", "restart requested by a user")
    if task is not None:
        event["task"] = task
    doc = dict(alloc, restart_requested={"index": index, "task": task})
    doc["events"] = _with_events(alloc, [event])
    _put(state, changes, doc, index)
    return ok(allocation=doc)


def alloc_gc(state: State, cmd: dict[str, Any], index: int, changes: Changes) -> dict[str, Any]:
    """Forget allocations that are stopped and terminal."""
    allocs = state.table("allocations")
    removed = 0
    for alloc_id in cmd.get("ids") or []:
        alloc = allocs.get(alloc_id)
        if alloc and alloc["desired_status"] == "stop" and alloc["status"] in TERMINAL:
            state.unindex_alloc(alloc)
            changes.wrote("allocations", alloc_id, alloc)
            del allocs[alloc_id]
            removed += 1
    if removed:
        state.touch("allocations", index)
    return ok(removed=removed)


def stop_job_allocs(
    state: State, changes: Changes, job: str, reason: str, ts: int, index: int
) -> int:
    live = [a for a in state.allocs_of(job=job) if a["desired_status"] == "run"]
    for alloc in live:
        mark_stop(state, changes, alloc, reason, ts, index)
    return len(live)


def _without_count(group: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k != "count"}


def moves_in_place(old_group: dict[str, Any] | None, new_group: dict[str, Any]) -> bool:
    """Whether a new version of a group keeps the allocations of the old one
    (it changed nothing but ``count``): the rule :func:`update_in_place`
    applies, which a plan's dry run (domain.job_plan) must apply alike."""
    return old_group is not None and _without_count(old_group) == _without_count(new_group)


def update_in_place(
    state: State,
    changes: Changes,
    old_job: dict[str, Any],
    new_job: dict[str, Any],
    ts: int,
    index: int,
) -> int:
    """A new version whose group changed only in `count` keeps its allocations.

    Like Nomad's in-place update: the running replicas move to the new version
    (nothing restarts), and the scheduler only adds or removes the difference.
    """
    live = [a for a in state.allocs_of(job=new_job["name"]) if a["desired_status"] == "run"]
    if not live:  # nothing runs: nothing to move (and no specs to compare)
        return 0
    old_groups = {g["name"]: g for g in old_job.get("groups") or ()}
    moved = 0
    for group in new_job.get("groups") or ():
        if not moves_in_place(old_groups.get(group["name"]), group):
            continue
        for alloc in live:
            if alloc["group"] == group["name"] and alloc["job_version"] == old_job.get("version"):
                doc = dict(alloc, job_version=new_job["version"], group_spec=group)
                doc["events"] = _with_events(
                    alloc,
                    [_event(ts, "updated", f"moved to version {new_job['version']} in place")],
                )
                _put(state, changes, doc, index)
                moved += 1
    return moved
