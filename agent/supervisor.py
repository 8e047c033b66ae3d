"""Keeps this node's tasks in line with the allocations the cluster wants.

Two inputs, both replaced wholesale: the desired allocations (every watch
result) and what the drivers observe (one ``list()`` per driver every poll).
:meth:`Supervisor.decide` compares them with what the agent remembers and
returns the driver actions to take; it does no I/O and reads the injected
clock only, so its decisions are unit-tested with a fake driver.
:meth:`Supervisor.reconcile` runs those actions in an executor (drivers
block) and records their outcome.

The rules:

* nothing is touched before the first watch result: until then the agent
  does not know what the cluster wants, and a container that looks orphaned
  may be one it is about to adopt;
* desired ``run`` and not terminal: each task of the group runs. A task
  found running (a container with our labels, e.g. after an agent restart)
  is adopted, never started twice; one that exited is handled by the
  restart policy (:mod:`agent.restart`); a failed task fails the allocation
  and its other tasks are stopped;
* desired ``stop``, or an allocation the cluster no longer lists: its tasks
  are stopped and removed, and it is reported ``complete``;
* a task of this node that belongs to no allocation at all is removed.

At most one action per task is in flight. An observation taken before an
action on the same task finished is stale for that task and ignored, so a
task that just started is never mistaken for one that vanished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import aiohttp

from agent.drivers.base import (
    Driver,
    DriverError,
    PortMapping,
    TaskNotFound,
    TaskSpec,
    TaskState,
)
from agent.health import CheckResult, run_check
from agent.restart import COMPLETE, FAIL, RESTART
from agent.state import DEAD, PENDING, RUNNING, AllocRuntime, TaskRuntime, ms

__all__ = ["Supervisor", "Start", "Kill", "Stop", "Action", "SecretsUnavailable"]

log = logging.getLogger("heroctl.agent")

SECRET_RETRY = 2.0  # seconds before another try when the secrets could not be fetched

Key = tuple[str, str]  # (alloc id, task)


class SecretsUnavailable(Exception):
    """The task's secrets could not be fetched now (not a task failure)."""


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


Action = Start | Stop | Kill

SecretsFetcher = Callable[[str], Awaitable[Mapping[str, Any]]]


def _task_secrets(doc: Mapping[str, Any], task: Mapping[str, Any]) -> dict[str, str]:
    """The values of this task's secret env vars from the secrets endpoint's
    answer (``{"env": {...}}``, or per task ``{"tasks": {name: {...}}}``)."""
    wanted = task.get("secrets") or {}
    per_task = (doc.get("tasks") or {}).get(task["name"])
    source = per_task if isinstance(per_task, Mapping) else doc.get("env") or {}
    missing = [k for k in wanted if k not in source]
    if missing:
        raise SecretsUnavailable(f"the secrets endpoint did not return {', '.join(missing)}")
    return {k: str(source[k]) for k in wanted}


class Supervisor:
    """``drivers``: driver name -> driver (each already scoped to this node).
    ``fetch_secrets(alloc_id)``: the secrets endpoint's answer.
    ``wake``: called whenever there is something new to reconcile or report."""

    def __init__(
        self,
        node_id: str,
        drivers: Mapping[str, Driver],
        *,
        fetch_secrets: SecretsFetcher,
        host_ip: str = "127.0.0.1",
        clock: Callable[[], float] = time.time,
        executor: Executor | None = None,
        wake: Callable[[], None] = lambda: None,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        self.node_id = node_id
        self.drivers = dict(drivers)
        self.fetch_secrets = fetch_secrets
        self.host_ip = host_ip
        self.clock = clock
        self.executor = executor
        self.wake = wake
        self.http = http
        self.desired: dict[str, dict[str, Any]] | None = None
        self.polled = False  # the drivers were listed at least once
        self.runtimes: dict[str, AllocRuntime] = {}
        self.observed: dict[Key, TaskState] = {}
        self._gen = 0  # bumped by every finished action
        self._key_gen: dict[Key, int] = {}
        self.busy: dict[Key, asyncio.Task[None]] = {}
        self._checks: dict[Key, asyncio.Task[None]] = {}
        self._closing = False

    # --- inputs -------------------------------------------------------------------

    def set_desired(self, allocations: Iterable[Mapping[str, Any]]) -> None:
        """A watch result: every allocation the cluster has for this node."""
        desired: dict[str, dict[str, Any]] = {}
        for doc in allocations:
            node = doc.get("node")
            if node is not None and node != self.node_id:
                continue  # not ours (a confused server): never act on it
            desired[str(doc["id"])] = dict(doc)
        self.desired = desired

    def observation_gen(self) -> int:
        """Call before listing the drivers; pass the value to :meth:`observe`."""
        return self._gen

    def observe(self, states: Iterable[TaskState], gen: int) -> None:
        """What the drivers report, listed when :meth:`observation_gen` was ``gen``.
        Tasks acted on since keep what those actions reported."""
        fresh: dict[Key, TaskState] = {}
        for st in states:
            if st.alloc_id and st.task:
                fresh[(st.alloc_id, st.task)] = st
        for key, key_gen in list(self._key_gen.items()):
            if key_gen <= gen:
                del self._key_gen[key]  # this listing already saw the action's outcome
                continue
            current = self.observed.get(key)
            if current is None:
                fresh.pop(key, None)
            else:
                fresh[key] = current
        self.observed = fresh
        self.polled = True

    async def poll(self) -> None:
        """List every driver (in the executor) and :meth:`observe` the result."""
        gen = self.observation_gen()
        loop = asyncio.get_running_loop()
        states: list[TaskState] = []
        for name, driver in self.drivers.items():
            try:
                states.extend(await loop.run_in_executor(self.executor, driver.list))
            except DriverError as exc:
                # Without a listing we cannot tell running from gone: keep
                # what we saw last for this driver rather than guess.
                log.warning("agent: cannot list %s tasks: %s", name, exc)
                states.extend(st for st in self.observed.values() if st.driver == name)
        self.observe(states, gen)

    # --- decisions (no I/O) -----------------------------------------------------

    def decide(self) -> list[Action]:
        """The actions that bring the tasks in line; updates the runtimes
        (exits seen, restarts planned, health) as a side effect."""
        if self.desired is None or not self.polled:
            # Until we know both what the cluster wants and what runs here,
            # any action could start a duplicate or remove a task to adopt.
            return []
        now = self.clock()
        actions: list[Action] = []
        by_alloc: dict[str, dict[str, TaskState]] = defaultdict(dict)
        for (alloc_id, task), st in self.observed.items():
            by_alloc[alloc_id][task] = st
        for alloc_id, doc in self.desired.items():
            rt = self.runtimes.get(alloc_id)
            if rt is None:
                rt = self.runtimes[alloc_id] = AllocRuntime.from_doc(doc, now)
            else:
                rt.doc = doc
            if rt.desired_run and not rt.lost:
                self._decide_run(rt, by_alloc.get(alloc_id, {}), actions, now)
            else:
                self._decide_stop(rt, by_alloc.get(alloc_id, {}), actions, now)
        for alloc_id, rt in list(self.runtimes.items()):
            if alloc_id in self.desired:
                continue
            left = by_alloc.get(alloc_id, {})
            self._decide_stop(rt, left, actions, now)
            if not left and not self._busy_alloc(alloc_id):
                del self.runtimes[alloc_id]  # gone from the cluster and from the node
        for alloc_id, tasks in by_alloc.items():
            if alloc_id in self.runtimes:
                continue
            for task, st in tasks.items():
                if (alloc_id, task) not in self.busy:
                    actions.append(Kill(alloc_id, task, st.driver, "no allocation wants it"))
        return actions

    def _busy_alloc(self, alloc_id: str) -> bool:
        return any(key[0] == alloc_id for key in self.busy)

    def _decide_run(
        self,
        rt: AllocRuntime,
        observed: Mapping[str, TaskState],
        actions: list[Action],
        now: float,
    ) -> None:
        if rt.terminal:
            # Failed or complete: nothing of it may run any more.
            for task, st in observed.items():
                if st.running and (rt.id, task) not in self.busy:
                    actions.append(Stop(rt.id, task, st.driver, f"allocation {rt.status}"))
            return
        for name, t in rt.tasks.items():
            key = (rt.id, name)
            if key in self.busy:
                continue
            st = observed.get(name)
            if t.state == DEAD:
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
                self._exited(rt, t, st, now)
            if t.state == PENDING and (t.next_start is None or t.next_start <= now):
                actions.append(Start(rt.id, name, restart=t.restart_due))
        if any(t.failed for t in rt.tasks.values()):
            rt.failed = True
            for name, t in rt.tasks.items():
                if t.state == PENDING:
                    t.state = DEAD
                    t.finished_at = t.finished_at or ms(now)
                st = observed.get(name)
                if st is not None and st.running and (rt.id, name) not in self.busy:
                    actions.append(Stop(rt.id, name, st.driver, "another task failed"))
        self._observe_health(rt, now)

    def _exited(self, rt: AllocRuntime, t: TaskRuntime, st: TaskState | None, now: float) -> None:
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
        decision = t.restarts.on_exit(now, code, rt.batch)
        self._apply_decision(rt, t, decision.action, decision.at, decision.reason, now)

    def _apply_decision(
        self,
        rt: AllocRuntime,
        t: TaskRuntime,
        action: str,
        at: float | None,
        reason: str,
        now: float,
    ) -> None:
        if action == COMPLETE:
            t.state = DEAD
            t.failed = False
        elif action == RESTART:
            t.state = PENDING
            t.restart_due = True
            t.next_start = at
            rt.event(now, "restarting", reason, t.name)
        else:
            assert action == FAIL
            t.state = DEAD
            t.failed = True
            rt.event(now, "failed", reason, t.name)

    def _decide_stop(
        self,
        rt: AllocRuntime,
        observed: Mapping[str, TaskState],
        actions: list[Action],
        now: float,
    ) -> None:
        for task, st in observed.items():
            if (rt.id, task) not in self.busy:
                reason = (
                    "allocation stopped" if rt.id in (self.desired or {}) else "allocation gone"
                )
                actions.append(Kill(rt.id, task, st.driver, reason))
        if observed or self._busy_alloc(rt.id):
            return
        if not rt.stopped:
            rt.stopped = True
            for t in rt.tasks.values():
                if t.state != DEAD:
                    t.state = DEAD
                    t.finished_at = t.finished_at or ms(now)
                t.check_ok = None

    def _observe_health(self, rt: AllocRuntime, now: float) -> None:
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

    def wake_at(self) -> float | None:
        """The next time :meth:`decide` has something to do on its own
        (a delayed restart, a health deadline)."""
        times: list[float] = []
        for rt in self.runtimes.values():
            for t in rt.tasks.values():
                if t.state == PENDING and t.next_start is not None:
                    times.append(t.next_start)
            if rt.health is not None and not rt.terminal:
                at = rt.health.wake_at()
                if at is not None:
                    times.append(at)
        return min(times) if times else None

    # --- doing it ---------------------------------------------------------------------

    async def reconcile(self) -> list[Action]:
        """Decide, start the actions (each in the background), manage the
        health checks; returns the actions started."""
        actions = self.decide()
        for action in actions:
            key = (action.alloc_id, action.task)
            if key in self.busy:
                continue
            task = asyncio.create_task(self._run(action), name=f"agent-{type(action).__name__}")
            self.busy[key] = task
        self._sync_checks()
        return actions

    async def _run(self, action: Action) -> None:
        key = (action.alloc_id, action.task)
        try:
            if isinstance(action, Start):
                await self._start(action)
            else:
                await self._stop(action)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one failing action must not stop the agent
            log.exception("agent: %s failed", action)
        finally:
            self.busy.pop(key, None)
            self._gen += 1
            self._key_gen[key] = self._gen
            if not self._closing:
                self.wake()

    def _spec(self, rt: AllocRuntime, name: str, secrets: Mapping[str, str]) -> TaskSpec:
        task = rt.task_spec(name)
        doc = rt.doc
        host_ports: Mapping[str, int] = doc.get("ports") or {}
        ports = []
        for port in task.get("ports") or []:
            host = host_ports.get(port["name"]) or port.get("static")
            if not host:
                raise DriverError(f"port {port['name']!r} has no host port in the allocation")
            ports.append(PortMapping(port["name"], int(host), port.get("to")))
        res = task.get("resources") or {}
        return TaskSpec(
            alloc_id=rt.id,
            job=str(doc.get("job", "")),
            group=str(doc.get("group", "")),
            task=name,
            node=self.node_id,
            image=task.get("image"),
            command=task.get("command"),
            env=dict(task.get("env") or {}),
            secret_env=dict(secrets),
            ports=tuple(ports),
            cpu=int(res.get("cpu", 100)),
            memory=int(res.get("memory", 128)),
            labels=dict(task.get("labels") or {}),
            host_ip=self.host_ip,
            kill_timeout=float(task.get("kill_timeout", 5)),
            job_version=int(doc.get("job_version", 0) or 0),
        )

    async def _start(self, action: Start) -> None:
        rt = self.runtimes.get(action.alloc_id)
        if rt is None:
            return
        t = rt.tasks[action.task]
        task = rt.task_spec(action.task)
        loop = asyncio.get_running_loop()
        driver = self.drivers.get(t.driver)
        try:
            if driver is None:
                raise DriverError(
                    f"driver {t.driver!r} is not available on this node "
                    f"(available: {', '.join(self.drivers) or 'none'})"
                )
            secrets: Mapping[str, str] = {}
            if task.get("secrets"):
                try:
                    secrets = _task_secrets(await self.fetch_secrets(rt.id), task)
                except SecretsUnavailable:
                    raise
                except Exception as exc:  # noqa: BLE001 - the API client's errors, unreachable...
                    raise SecretsUnavailable(f"cannot fetch the task's secrets: {exc}") from exc
            spec = self._spec(rt, action.task, secrets)
            if t.restart_due:
                # A restart counts when attempted: one that cannot even
                # start (image gone, port taken) must use up the budget too.
                t.restarts.restarted(self.clock())
                t.restart_due = False
                restarted = True
            else:
                restarted = False
            state = await loop.run_in_executor(self.executor, driver.start, spec)
            del secrets, spec  # the secrets live no longer than the start
        except SecretsUnavailable as exc:
            now = self.clock()
            t.next_start = now + SECRET_RETRY
            if t.last_error != str(exc):
                t.last_error = str(exc)
                rt.event(now, "secrets_error", str(exc), action.task)
            return
        except DriverError as exc:
            now = self.clock()
            t.last_error = str(exc)
            t.finished_at = ms(now)
            rt.event(now, "driver_error", str(exc), action.task)
            decision = t.restarts.on_exit(now, None, False)
            self._apply_decision(rt, t, decision.action, decision.at, decision.reason, now)
            return
        now = self.clock()
        if restarted:
            rt.event(now, "restarted", f"restart {t.restarts.total} ({state.handle[:12]})", t.name)
        else:
            rt.event(now, "started", f"task started ({state.handle[:12]})", t.name)
        t.state = RUNNING if state.running else t.state
        t.handle = state.handle
        t.started_at = ms(state.started_at or now)
        t.finished_at = None
        t.exit_code = None
        t.next_start = None
        t.last_error = ""
        self.observed[(action.alloc_id, action.task)] = state

    async def _stop(self, action: Stop | Kill) -> None:
        driver = self.drivers.get(action.driver)
        if driver is None:
            return
        rt = self.runtimes.get(action.alloc_id)
        loop = asyncio.get_running_loop()
        timeout: float | None = None
        if rt is not None:
            with contextlib.suppress(KeyError):
                timeout = float(rt.task_spec(action.task).get("kill_timeout", 5))
        key = (action.alloc_id, action.task)
        try:
            state = await loop.run_in_executor(
                self.executor, lambda: driver.stop(action.alloc_id, action.task, timeout)
            )
        except TaskNotFound:
            state = None  # nothing left to stop
        except DriverError as exc:
            state = None
            log.warning("agent: cannot stop %s/%s: %s", action.alloc_id, action.task, exc)
        if isinstance(action, Kill):
            try:
                await loop.run_in_executor(
                    self.executor, driver.remove, action.alloc_id, action.task
                )
            except DriverError as exc:
                log.warning("agent: cannot remove %s/%s: %s", action.alloc_id, action.task, exc)
                return  # observed again next poll: tried again
            self.observed.pop(key, None)
        elif state is not None:
            self.observed[key] = state
        now = self.clock()
        if rt is not None:
            t = rt.tasks.get(action.task)
            if t is not None and t.state == RUNNING and isinstance(action, Stop):
                t.state = DEAD
                t.finished_at = ms(now)
                if state is not None:
                    t.exit_code = state.exit_code
            rt.event(now, "killed", action.reason or "task stopped", action.task)

    # --- health checks -----------------------------------------------------------------

    def _sync_checks(self) -> None:
        """One check loop per running task with a check; none for the rest."""
        want: dict[Key, tuple[AllocRuntime, dict[str, Any]]] = {}
        for rt in self.runtimes.values():
            if rt.terminal or not rt.desired_run:
                continue
            for name, t in rt.tasks.items():
                if t.state != RUNNING:
                    continue
                check = rt.task_spec(name).get("check")
                if check:
                    want[(rt.id, name)] = (rt, check)
        for key in list(self._checks):
            if key not in want:
                self._checks.pop(key).cancel()
        for key, (rt, check) in want.items():
            if key not in self._checks:
                self._checks[key] = asyncio.create_task(
                    self._check_loop(rt, key[1], check), name=f"check-{key[0][:8]}-{key[1]}"
                )

    async def _check_loop(self, rt: AllocRuntime, name: str, check: Mapping[str, Any]) -> None:
        interval = max(0.05, float(check.get("interval", 10)))
        await asyncio.sleep(min(0.2, interval))
        while True:
            result = await self.check_once(rt, name, check)
            t = rt.tasks.get(name)
            if t is None or t.state != RUNNING:
                return
            if result.passing != t.check_ok:
                now = self.clock()
                if t.check_ok is not None or not result.passing:
                    state = "passing" if result.passing else "failing"
                    rt.event(now, "health", f"check {state}: {result.output}", name)
                t.check_ok = result.passing
                self.wake()
            t.check_output = result.output
            await asyncio.sleep(interval)

    async def check_once(
        self, rt: AllocRuntime, name: str, check: Mapping[str, Any]
    ) -> CheckResult:
        t = rt.tasks[name]
        driver = self.drivers.get(t.driver)

        async def run_command(argv: list[str], timeout: float) -> tuple[int, str]:
            runner = getattr(driver, "exec_command", None)
            if runner is None:
                raise DriverError(f"the {t.driver} driver cannot run command checks")
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, runner, rt.id, name, argv, timeout)

        return await run_check(
            check,
            host_ip=self.host_ip,
            ports=rt.doc.get("ports") or {},
            session=self.http,
            run_command=run_command,
        )

    # --- reporting -------------------------------------------------------------------------

    def pending_updates(self) -> list[dict[str, Any]]:
        out = []
        for rt in self.runtimes.values():
            update = rt.pending_update()
            if update is not None:
                out.append(update)
        return out

    def acknowledge(self, updates: Iterable[Mapping[str, Any]]) -> None:
        for update in updates:
            rt = self.runtimes.get(update["id"])
            if rt is not None:
                rt.acknowledge(update)

    # --- shutdown ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop checking and wait for actions in flight; tasks keep running."""
        self._closing = True
        for task in self._checks.values():
            task.cancel()
        pending = [*self._checks.values(), *self.busy.values()]
        self._checks.clear()
        if pending:
            await asyncio.wait(pending, timeout=30)
