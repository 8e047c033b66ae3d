"""The log collector: which tasks of this node are followed, and when the
store sweeps.

:meth:`LogCollector.sync` is called with what the drivers observe (after
every reconcile); it starts a follower (:mod:`agent.logs.followers`) for a
new, restarted or adopted task and lets the followers of vanished tasks
read what is left and end. With the allocations the cluster still wants
run here it also runs the store's retention sweep, at most every
``sweep_interval`` seconds, in the executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from agent.drivers.base import Driver, TaskState
from agent.logs.followers import DockerFollower, ExecFollower, Follower
from agent.logs.store import LogStore
from agent.state import TERMINAL

__all__ = ["LogCollector"]


class LogCollector:
    """Follows the output of every task this node runs into ``store``.

    ``drivers``: the agent's drivers by name; docker and exec tasks are
    followed, tasks of other drivers are not (their ``logs()`` still works).
    ``executor``: where the retention sweep (file I/O) runs.
    """

    def __init__(
        self,
        store: LogStore,
        drivers: Mapping[str, Driver],
        *,
        executor: Executor | None = None,
        sweep_interval: float = 30.0,
        exec_poll: float = 0.2,
        docker_factory: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.drivers = dict(drivers)
        self.executor = executor
        self.sweep_interval = sweep_interval
        self.exec_poll = exec_poll
        self.clock = clock
        self._docker_factory = docker_factory
        self._docker: Any = None
        self._docker_lock = threading.Lock()
        self._followers: dict[tuple[str, str], Follower] = {}
        self._last_sweep: float | None = None
        self._sweeping: Any = None
        self._closed = False

    def docker_client(self) -> Any:
        """A docker client of the collector's own, so long-lived log streams
        never take the driver's connections (nor it theirs). Its read
        timeout is long: a stream is as silent as its task, and a short one
        would reconnect every quiet stream; a hung engine holds only that
        follower's thread (liveness is asked through the driver)."""
        with self._docker_lock:
            if self._docker is None:
                if self._docker_factory is not None:
                    self._docker = self._docker_factory()
                else:
                    import docker

                    self._docker = docker.from_env(timeout=3600, max_pool_size=1024)
            return self._docker

    def _new_follower(self, st: TaskState) -> Follower | None:
        driver = self.drivers.get(st.driver)
        if driver is None:
            return None
        if st.driver == "docker" and hasattr(driver, "client"):
            return DockerFollower(self, st)
        task_dir = getattr(driver, "task_dir", None)
        if st.driver == "exec" and task_dir is not None:
            return ExecFollower(self, st, Path(task_dir(st.alloc_id, st.task)) / "output.log")
        return None

    def following(self) -> list[tuple[str, str]]:
        return [k for k, f in self._followers.items() if f.alive]

    def sync(self, states: Iterable[TaskState], active: Iterable[str] | None = None) -> None:
        """What the drivers observe now: follow tasks not followed yet (new,
        restarted, adopted), let followers of vanished tasks finish.
        ``active``: the allocations that should run here, for the retention
        sweep (None until the agent knows what the cluster wants)."""
        if self._closed:
            return
        seen: set[tuple[str, str]] = set()
        for st in states:
            if not st.alloc_id or not st.task:
                continue
            key = (st.alloc_id, st.task)
            seen.add(key)
            current = self._followers.get(key)
            if current is not None:
                current.seen(st)
                if current.alive:
                    if st.handle == current.handle or st.driver == "exec":
                        continue
                    current.finish()  # a new container: the old stream ends by itself
                    continue
                if current.handle == st.handle and (not st.running or st.driver == "exec"):
                    continue  # read to its end already
                if current.handle == st.handle and st.running and st.driver == "docker":
                    pass  # the stream ended while it runs: follow again (resumes)
            follower = self._new_follower(st)
            if follower is None:
                continue
            self._followers[key] = follower
            follower.start()
        for key, follower in list(self._followers.items()):
            if key not in seen:
                follower.finish()
                if not follower.alive:
                    del self._followers[key]
        if active is not None:
            self._maybe_sweep(set(active))

    def sync_supervisor(self, sup: Any) -> None:
        """:meth:`sync` with what an :class:`agent.supervisor.Supervisor`
        observes; allocations wanted running (and not terminal) are active."""
        active: set[str] | None = None
        if sup.desired is not None:
            active = set()
            for alloc_id, doc in sup.desired.items():
                rt = sup.runtimes.get(alloc_id)
                terminal = rt.terminal if rt is not None else doc.get("status") in TERMINAL
                if doc.get("desired_status", "run") == "run" and not terminal:
                    active.add(alloc_id)
        self.sync(list(sup.observed.values()), active)

    def _maybe_sweep(self, active: set[str]) -> None:
        now = self.clock()
        if self._last_sweep is not None and now - self._last_sweep < self.sweep_interval:
            return
        if self._sweeping is not None and not self._sweeping.done():
            return
        self._last_sweep = now
        # Allocations still being followed are kept whatever the cluster says.
        keep = active | {k[0] for k, f in self._followers.items() if f.alive}
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.store.sweep(keep)
            return
        self._sweeping = loop.run_in_executor(self.executor, self.store.sweep, keep)

    def close(self, timeout: float = 2.0) -> None:
        """Stop following (the tasks keep running; the next agent resumes)."""
        self._closed = True
        followers = list(self._followers.values())
        for f in followers:
            f.stop()
        deadline = time.monotonic() + timeout
        for f in followers:
            for t in f.threads:
                if t.is_alive():
                    t.join(max(0.0, deadline - time.monotonic()))
        self._followers.clear()
        self.store.flush()
        with self._docker_lock:
            if self._docker is not None:
                with contextlib.suppress(Exception):
                    self._docker.close()
                self._docker = None
