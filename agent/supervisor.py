"""Keeps this node's tasks in line with the allocations the cluster wants.

Two inputs, both replaced wholesale: the desired allocations (every watch
result) and what each driver observes (its ``list()`` every poll, each
driver on its own: one that fails or hangs keeps what it showed last and
delays no other's).
:meth:`Supervisor.decide` hands them, with what the agent remembers, to the
rules of :mod:`agent.decisions` (no I/O, unit-tested with a fake driver);
:meth:`Supervisor.reconcile` runs the actions they return through
:class:`agent.drivers.calls.DriverCalls` (off the loop, with deadlines, every
failure a ``DriverError``: a failed start is that allocation's
``driver_error``, handed to its restart policy), records their outcome, and
keeps one health-check loop per running task that has a check.

A driver expected but not answering yet (an engine that starts after the
agent) is *awaited*: until it is listed, or its grace ends, its tasks are
held (see :mod:`agent.decisions`) so its containers can still be adopted.

At most one action per task is in flight. An observation taken before an
action on the same task finished is stale for that task and ignored, so a
task that just started is never mistaken for one that vanished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Executor
from typing import Any

import aiohttp

from agent import decisions
from agent.connections import established_per_port
from agent.decisions import Action, Key, Kill, Restart, Start, Stop
from agent.drivers.base import Driver, DriverError, TaskNotFound, TaskState
from agent.drivers.calls import DriverCalls
from agent.health_checks import HealthCheckLoops
from agent.state import DEAD, PENDING, RUNNING, AllocRuntime, ms
from agent.task_spec import SecretsUnavailable, build_task_spec, driver_events, start_secrets

__all__ = ["Supervisor"]

log = logging.getLogger("heroctl.agent")

SECRET_RETRY = 2.0  # seconds before another try when the secrets could not be fetched

SecretsFetcher = Callable[[str, str], Awaitable[Mapping[str, Any]]]


class Supervisor:
    """``drivers``: driver name -> driver (each already scoped to this node).
    ``fetch_secrets(alloc_id, task)``: the secrets endpoint's answer for one task.
    ``wake``: called whenever there is something new to reconcile or report.
    ``calls``: how drivers are called (default: on ``executor``, no deadline).
    ``release_timeout``: how long a stop waits at most for the ingress to
    let go of the allocation (``[agent] ingress_release_timeout``)."""

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
        calls: DriverCalls | None = None,
        release_timeout: float = decisions.RELEASE_TIMEOUT,
    ) -> None:
        self.node_id = node_id
        self.release_timeout = release_timeout
        self.drivers = dict(drivers)
        self.fetch_secrets = fetch_secrets
        self.host_ip = host_ip
        self.clock = clock
        self.calls = calls if calls is not None else DriverCalls(executor)
        self.wake = wake
        self.http = http
        self.desired: dict[str, dict[str, Any]] | None = None
        self.listed: set[str] = set()  # drivers listed at least once
        self.awaited: dict[str, float] = {}  # driver not answering yet -> hold its tasks until
        self._list_failures: dict[str, int] = {}
        self.runtimes: dict[str, AllocRuntime] = {}
        self.observed: dict[Key, TaskState] = {}
        self._gen = 0  # bumped by every finished action
        self._key_gen: dict[Key, tuple[int, str]] = {}  # -> (gen, the action's driver)
        self.busy: dict[Key, asyncio.Task[None]] = {}
        self.checks = HealthCheckLoops(self.drivers, self.calls, host_ip, http, clock, wake)
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

    def add_driver(self, driver: Driver) -> None:
        """A driver that answers now (an awaited engine came up); its first
        listing adopts what it runs."""
        self.drivers[driver.name] = driver
        self.awaited.pop(driver.name, None)

    @property
    def polled(self) -> bool:
        """Every driver was listed at least once."""
        return self.listed >= set(self.drivers)

    def held(self) -> set[str]:
        """The drivers whose tasks wait: not listed yet, or awaited within their grace."""
        now = self.clock()
        waiting = {name for name, until in self.awaited.items() if now < until}
        return (set(self.drivers) | waiting) - self.listed

    def observation_gen(self) -> int:
        """Call before listing a driver; pass the value to :meth:`observe`."""
        return self._gen

    def observe(self, states: Iterable[TaskState], gen: int, driver: str | None = None) -> None:
        """What ``driver`` reports (None: every driver), listed when
        :meth:`observation_gen` was ``gen``. Tasks acted on since keep what
        those actions reported; other drivers' tasks keep what they showed."""
        fresh: dict[Key, TaskState] = {}
        if driver is not None:
            fresh = {k: st for k, st in self.observed.items() if st.driver != driver}
        for st in states:
            if st.alloc_id and st.task:
                fresh[(st.alloc_id, st.task)] = st
        for key, (key_gen, key_driver) in list(self._key_gen.items()):
            if driver is not None and key_driver != driver:
                continue  # another driver's task: this listing says nothing of it
            if key_gen <= gen:
                del self._key_gen[key]  # this listing already saw the action's outcome
                continue
            current = self.observed.get(key)
            if current is None:
                fresh.pop(key, None)
            else:
                fresh[key] = current
        self.observed = fresh
        self.listed.update(self.drivers if driver is None else (driver,))

    async def poll(self, name: str | None = None) -> None:
        """List driver ``name`` (None: every driver, at once) and
        :meth:`observe` each answer as it comes. A driver that cannot list
        keeps what it showed last: without a listing we cannot tell running
        from gone, so we do not guess."""
        if name is None:
            await asyncio.gather(*(self.poll(n) for n in list(self.drivers)))
            return
        gen = self.observation_gen()
        try:
            states = await self.calls.list(self.drivers[name])
        except DriverError as exc:
            failures = self._list_failures[name] = self._list_failures.get(name, 0) + 1
            if failures in (1, 5) or failures % 30 == 0:
                log.warning("agent: cannot list %s tasks (%d in a row): %s", name, failures, exc)
            return
        if self._list_failures.pop(name, 0):
            log.info("agent: %s tasks are listed again", name)
        self.observe(states, gen, name)

    # --- decisions ----------------------------------------------------------------

    def decide(self) -> list[Action]:
        """The actions that bring the tasks in line (:func:`agent.decisions.decide`)."""
        if self.desired is None:
            # Until we know what the cluster wants, any action could remove
            # a task to adopt. (Until a driver is listed, its tasks are held.)
            return []
        return decisions.decide(
            self.desired,
            self.observed,
            self.runtimes,
            self.busy,
            self.clock(),
            self.held(),
            release_timeout=self.release_timeout,
        )

    def wake_at(self) -> float | None:
        """The next time :meth:`decide` has something to do on its own
        (a delayed restart, a health deadline)."""
        return decisions.wake_at(self.runtimes)

    async def _count_connections(self) -> None:
        """The open connections of each stopped allocation whose stop waits for
        them (AllocRuntime.keeps_connections), before each decision: one read
        of the kernel's tables, off the event loop."""
        waiting = [rt for rt in self.runtimes.values() if not rt.stopped]
        if not (waiting := [rt for rt in waiting if rt.keeps_connections() is not None]):
            return
        counts = await asyncio.to_thread(established_per_port)
        for rt in waiting:
            ports = {p for p in (rt.doc.get("ports") or {}).values() if isinstance(p, int)}
            rt.connections = sum(counts[port] for port in ports)

    # --- doing it ---------------------------------------------------------------------

    async def reconcile(self) -> list[Action]:
        """Decide, start the actions (each in the background), manage the
        health checks; returns the actions started."""
        await self._count_connections()
        actions = self.decide()
        for action in actions:
            key = (action.alloc_id, action.task)
            if key in self.busy:
                continue
            task = asyncio.create_task(self._run(action), name=f"agent-{type(action).__name__}")
            self.busy[key] = task
        self.checks.sync(self.runtimes.values())
        return actions

    async def _run(self, action: Action) -> None:
        key = (action.alloc_id, action.task)
        driver = self._driver_of(action)
        try:
            if isinstance(action, Start):
                await self._start(action)
            elif isinstance(action, Restart):
                await self._restart(action)
            else:
                await self._stop(action)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one failing action must not stop the agent
            log.exception("agent: %s failed", action)
        finally:
            self.busy.pop(key, None)
            self._gen += 1
            self._key_gen[key] = (self._gen, driver)
            if not self._closing:
                self.wake()

    def _driver_of(self, action: Action) -> str:
        if not isinstance(action, Start):
            return action.driver
        rt = self.runtimes.get(action.alloc_id)
        t = rt.tasks.get(action.task) if rt is not None else None
        return t.driver if t is not None else ""

    async def _start(self, action: Start, *, by_user: bool = False) -> bool:
        """Start a task; True when it started. ``by_user``: the start of a
        user's restart, counted in the task's restarts but kept out of its
        restart policy's window (it uses up none of the attempts)."""
        rt = self.runtimes.get(action.alloc_id)
        if rt is None:
            return False
        t = rt.tasks[action.task]
        task = rt.task_spec(action.task)
        driver = self.drivers.get(t.driver)
        try:
            if driver is None:
                raise DriverError(
                    f"driver {t.driver!r} is not available on this node "
                    f"(available: {', '.join(self.drivers) or 'none'})"
                )
            secrets, registry = await start_secrets(self.fetch_secrets, rt.id, action.task, task)
            spec = build_task_spec(
                rt,
                action.task,
                secrets,
                node_id=self.node_id,
                host_ip=self.host_ip,
                registry_auth=registry,
                on_event=driver_events(rt, action.task, self.clock, self.wake),
            )
            restarted = t.count_start(self.clock(), by_user)
            state = await self.calls.start(driver, spec)
            del secrets, registry, spec  # the secrets live no longer than the start
        except SecretsUnavailable as exc:
            now = self.clock()
            t.next_start = now + SECRET_RETRY
            if t.last_error != str(exc):
                t.last_error = str(exc)
                rt.event(now, "secrets_error", str(exc), action.task)
            return False
        except DriverError as exc:
            now = self.clock()
            t.last_error = str(exc)
            t.finished_at = ms(now)
            rt.event(now, "driver_error", str(exc), action.task)
            decisions.apply_restart_policy(rt, t, None, False, now)
            return False
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
        return True

    async def _restart(self, action: Restart) -> None:
        """A user's restart: stop the task (its kill_timeout), then start it
        again in the same allocation (a new container or process)."""
        try:
            await self._restart_task(action)
        finally:
            rt = self.runtimes.get(action.alloc_id)
            if rt is not None:
                rt.restarted(action.task)

    async def _restart_task(self, action: Restart) -> None:
        rt = self.runtimes.get(action.alloc_id)
        driver = self.drivers.get(action.driver)
        t = rt.tasks.get(action.task) if rt is not None else None
        if rt is None or t is None or driver is None:
            return
        timeout: float | None = None
        with contextlib.suppress(KeyError):
            timeout = float(rt.task_spec(action.task).get("kill_timeout", 5))
        try:
            await self.calls.stop(driver, action.alloc_id, action.task, timeout)
        except TaskNotFound:
            pass  # gone already: start it again all the same
        except DriverError as exc:
            rt.event(self.clock(), "driver_error", f"cannot stop it to restart: {exc}", t.name)
            return  # it still runs: nothing was restarted
        started = await self._start(Start(action.alloc_id, action.task, restart=True), by_user=True)
        if not started and t.state == RUNNING:  # stopped; its start waits (secrets)
            t.state = PENDING
            t.finished_at = ms(self.clock())

    async def _stop(self, action: Stop | Kill) -> None:
        driver = self.drivers.get(action.driver)
        if driver is None:
            return
        rt = self.runtimes.get(action.alloc_id)
        timeout: float | None = None
        if rt is not None:
            with contextlib.suppress(KeyError):
                timeout = float(rt.task_spec(action.task).get("kill_timeout", 5))
        key = (action.alloc_id, action.task)
        try:
            state = await self.calls.stop(driver, action.alloc_id, action.task, timeout)
        except TaskNotFound:
            state = None  # nothing left to stop
        except DriverError as exc:
            state = None
            log.warning("agent: cannot stop %s/%s: %s", action.alloc_id, action.task, exc)
        if isinstance(action, Kill):
            try:
                await self.calls.remove(driver, action.alloc_id, action.task)
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
        pending = [*self.checks.cancel_all(), *self.busy.values()]
        if pending:
            await asyncio.wait(pending, timeout=30)
