"""What to do about this node's tasks: the reconcile rules, without I/O.

:func:`decide` compares the allocations the cluster wants here with what the
drivers observe and with what the agent remembers (the runtimes, which it
updates: exits seen, restarts planned, health), and returns the driver
actions to take. Kept apart from the supervisor that runs those actions
(:mod:`agent.supervisor`) so the rules read on their own: nothing here
does I/O, and the time is a value passed in.

The rules:

* nothing is touched before the first watch result and the first listing
  (the supervisor's guard): until then the agent does not know what the
  cluster wants, and a container that looks orphaned may be one it is
  about to adopt;
* desired ``run`` and not terminal: each task of the group runs. A task
  found running (a container with our labels, e.g. after an agent restart)
  is adopted, never started twice; one that exited is handled by the
  restart policy (:mod:`agent.restart`); a failed task fails the allocation
  and its other tasks are stopped;
* desired ``stop``, or an allocation the cluster no longer lists: its tasks
  are stopped and removed, and it is reported ``complete``; a stopped one
  that took traffic from the ingress runs on until the cluster says every
  node's ingress let go of it (``ingress_released``), ``release_timeout``
  seconds at most; then it waits for the connections it holds to close
  (requests nginx's old workers have in flight; a rainbow deployment's old
  version: its websockets, long polls and downloads), its ``kill_timeout``
  (rainbow: ``drain_connections``, the group's drain_timeout) at most;
* a task of this node that belongs to no allocation at all is removed;
* a user's restart request (the allocation's ``restart_requested``, newer
  than the one last acted on) restarts its running tasks in place, once no
  task it names has an action in flight: :class:`Restart`, outside the
  restart policy (it neither waits for the policy's delay nor uses up its
  attempts);
* a task with an action in flight (``busy``) gets no other;
* a task of a ``held`` driver (one not listed yet: its engine has not
  answered since the agent started) is neither started nor judged exited,
  and an allocation with such a task is not reported stopped: a container
  of it may run, waiting to be adopted once the engine answers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from agent.drivers.base import TaskState
from agent.restart import COMPLETE, FAIL, RESTART
from agent.state import DEAD, PENDING, RUNNING, AllocRuntime, TaskRuntime, ms

__all__ = [
    "Action",
    "Key",
    "Kill",
    "Restart",
    "Start",
    "Stop",
    "apply_restart_policy",
    "decide",
    "wake_at",
]

Key = tuple[str, str]  # (alloc id, task)
RELEASE_TIMEOUT = 10.0  # seconds a stop waits at most for the ingress to let go
USER_RESTART = "restart requested by a user"


@dataclass(frozen=True, slots=True)
class Start:
    alloc_id: str
    task: str
    restart: bool = False


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop a task but keep it (its logs and exit code stay readable)."""

    alloc_id: str
    task: str
    driver: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Kill:
    """Stop and remove a task."""

    alloc_id: str
    task: str
    driver: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Restart:
    """Stop a running task and start it again, in the same allocation: a
    user asked for it (it is not the restart policy's doing)."""

    alloc_id: str
    task: str
    driver: str
    reason: str = USER_RESTART


Action = Start | Stop | Kill | Restart


def decide(
    desired: Mapping[str, dict[str, Any]],
    observed: Mapping[Key, TaskState],
    runtimes: dict[str, AllocRuntime],
    busy: Collection[Key],
    now: float,
    held: Collection[str] = (),
    release_timeout: float = RELEASE_TIMEOUT,
) -> list[Action]:
    """The actions that bring the tasks in line; updates ``runtimes``
    (exits seen, restarts planned, health) as a side effect. ``held``: the
    drivers whose tasks wait (not listed yet)."""
    actions: list[Action] = []
    by_alloc: dict[str, dict[str, TaskState]] = defaultdict(dict)
    for (alloc_id, task), st in observed.items():
        by_alloc[alloc_id][task] = st
    for alloc_id, doc in desired.items():
        rt = runtimes.get(alloc_id)
        if rt is None:
            rt = runtimes[alloc_id] = AllocRuntime.from_doc(doc, now)
        else:
            rt.doc = doc
        observed_here = by_alloc.get(alloc_id, {})
        if rt.desired_run and not rt.lost:
            _decide_run(rt, observed_here, busy, actions, now, held)
        elif not rt.lost and (
            rt.holds_for_ingress(now, release_timeout) or rt.holds_for_connections(now)
        ):
            continue  # its tasks serve on until no ingress sends them requests
        else:
            _decide_stop(rt, observed_here, busy, "allocation stopped", actions, now, held)
    for alloc_id, rt in list(runtimes.items()):
        if alloc_id in desired:
            continue
        left = by_alloc.get(alloc_id, {})
        if _decide_stop(rt, left, busy, "allocation gone", actions, now, held):
            del runtimes[alloc_id]  # gone from the cluster and from the node
    for alloc_id, tasks in by_alloc.items():
        if alloc_id in runtimes:
            continue
        for task, st in tasks.items():
            if (alloc_id, task) not in busy:
                actions.append(Kill(alloc_id, task, st.driver, "no allocation wants it"))
    return actions


def _busy_alloc(busy: Collection[Key], alloc_id: str) -> bool:
    return any(key[0] == alloc_id for key in busy)


def _held(rt: AllocRuntime, held: Collection[str]) -> bool:
    return bool(held) and any(t.driver in held for t in rt.tasks.values())


def _decide_run(
    rt: AllocRuntime,
    observed: Mapping[str, TaskState],
    busy: Collection[Key],
    actions: list[Action],
    now: float,
    held: Collection[str],
) -> None:
    if rt.terminal:
        # Failed or complete: nothing of it may run any more.
        for task, st in observed.items():
            if st.running and (rt.id, task) not in busy:
                actions.append(Stop(rt.id, task, st.driver, f"allocation {rt.status}"))
        return
    restarting = _user_restart(rt, observed, busy, actions, now, held)
    for name, t in rt.tasks.items():
        key = (rt.id, name)
        if key in busy or name in restarting:
            continue
        st = observed.get(name)
        if t.state == DEAD or t.driver in held:
            continue
        if st is not None and st.running:
            if t.state != RUNNING:
                t.state = RUNNING
                t.handle = st.handle
                t.started_at = t.started_at or ms(st.started_at or now)
                t.finished_at = None
                t.exit_code = None
                t.next_start = None
                rt.event(now, "started", f"adopted running task ({st.handle[:12]})", name)
            continue
        if t.state == RUNNING:
            _exited(rt, t, st, now)
        if t.state == PENDING and (t.next_start is None or t.next_start <= now):
            actions.append(Start(rt.id, name, restart=t.restart_due))
    if any(t.failed for t in rt.tasks.values()):
        rt.failed = True
        for name, t in rt.tasks.items():
            if t.state == PENDING:
                t.state = DEAD
                t.finished_at = t.finished_at or ms(now)
            st = observed.get(name)
            if st is not None and st.running and (rt.id, name) not in busy:
                actions.append(Stop(rt.id, name, st.driver, "another task failed"))
    if not _held(rt, held):
        _observe_health(rt, now)


def _user_restart(
    rt: AllocRuntime,
    observed: Mapping[str, TaskState],
    busy: Collection[Key],
    actions: list[Action],
    now: float,
    held: Collection[str],
) -> set[str]:
    """Act on a restart request not acted on yet: a :class:`Restart` for each
    task it names that runs; the names of those tasks. A task of the request
    with an action in flight defers the whole request to a later round."""
    request = rt.restart_request()
    if request is None:
        return set()
    index, only = request
    names = [n for n in rt.tasks if only is None or n == only]
    if any((rt.id, n) in busy for n in names):
        return set()
    chosen: set[str] = set()
    for name in names:
        t, st = rt.tasks[name], observed.get(name)
        if t.state != RUNNING or st is None or not st.running or t.driver in held:
            continue  # only what runs restarts (an exit is the policy's business)
        rt.event(now, "restarting", USER_RESTART, name)
        actions.append(Restart(rt.id, name, st.driver))
        chosen.add(name)
    rt.take_restart(index, chosen)  # done (and reported) once each of them started again
    return chosen


def _exited(rt: AllocRuntime, t: TaskRuntime, st: TaskState | None, now: float) -> None:
    """A task we knew running is not: it exited, or its container is gone."""
    code = st.exit_code if st is not None else None
    t.exit_code = code
    t.finished_at = ms(now)
    t.check_ok = None
    if st is None:
        what = "task vanished (its container or process is gone)"
    elif st.oom_killed:
        what = f"task was killed: out of memory (exit code {code})"
    else:
        what = f"task exited with code {code}"
    rt.event(now, "exited", what, t.name)
    apply_restart_policy(rt, t, code, rt.batch, now)


def apply_restart_policy(
    rt: AllocRuntime, t: TaskRuntime, exit_code: int | None, batch: bool, now: float
) -> None:
    """What the task's restart policy says about an exit (or a start that
    failed): complete, start again later, or fail."""
    decision = t.restarts.on_exit(now, exit_code, batch)
    if decision.action == COMPLETE:
        t.state = DEAD
        t.failed = False
    elif decision.action == RESTART:
        t.state = PENDING
        t.restart_due = True
        t.next_start = decision.at
        rt.event(now, "restarting", decision.reason, t.name)
    else:
        assert decision.action == FAIL
        t.state = DEAD
        t.failed = True
        rt.event(now, "failed", decision.reason, t.name)


def _decide_stop(
    rt: AllocRuntime,
    observed: Mapping[str, TaskState],
    busy: Collection[Key],
    reason: str,
    actions: list[Action],
    now: float,
    held: Collection[str],
) -> bool:
    """Kill what is left of ``rt``; True once nothing of it is left."""
    for task, st in observed.items():
        if (rt.id, task) not in busy:
            actions.append(Kill(rt.id, task, st.driver, reason))
    if observed or _busy_alloc(busy, rt.id) or _held(rt, held):
        return False
    if not rt.stopped:
        rt.stopped = True
        for t in rt.tasks.values():
            if t.state != DEAD:
                t.state = DEAD
                t.finished_at = t.finished_at or ms(now)
            t.check_ok = None
    return True


def _observe_health(rt: AllocRuntime, now: float) -> None:
    if rt.health is None or rt.terminal:
        return
    before = rt.health.healthy
    if rt.health.observe(now, rt.health_ok()):
        if rt.health.healthy:
            rt.event(now, "health", "allocation is healthy")
        elif before is None:
            rt.event(
                now,
                "health",
                f"allocation not healthy within {rt.health.healthy_deadline:g}s "
                "(update.healthy_deadline)",
            )


def wake_at(runtimes: Mapping[str, AllocRuntime]) -> float | None:
    """The next time :func:`decide` has something to do on its own
    (a delayed restart, a health deadline)."""
    times: list[float] = []
    for rt in runtimes.values():
        for t in rt.tasks.values():
            if t.state == PENDING and t.next_start is not None:
                times.append(t.next_start)
        if rt.releasing and rt.release_by is not None:
            times.append(rt.release_by)
        if rt.keeping and rt.recheck_at is not None:
            times.append(rt.recheck_at)
        if rt.health is not None and not rt.terminal:
            at = rt.health.wake_at()
            if at is not None:
                times.append(at)
    return min(times) if times else None
