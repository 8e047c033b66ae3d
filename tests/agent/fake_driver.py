"""A fake task driver for the agent's unit tests (it runs nothing).

It implements the :class:`agent.drivers.base.Driver` protocol in memory:
``start`` records a running task (adopting one that already runs, as the
real drivers do), and tests make tasks exit, vanish or appear with
:meth:`FakeDriver.exit`, :meth:`FakeDriver.vanish` and :meth:`FakeDriver.plant`.
Every call is recorded in ``calls`` so a test can assert what the agent did.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import replace

from agent.drivers.base import (
    EXITED,
    RUNNING,
    DriverError,
    TaskNotFound,
    TaskSpec,
    TaskState,
    TaskStats,
)

_ids = itertools.count(1)


class FakeDriver:
    name = "docker"

    def __init__(self, node: str, name: str = "docker") -> None:
        self.node = node
        self.name = name
        self.tasks: dict[tuple[str, str], TaskState] = {}
        self.specs: dict[tuple[str, str], TaskSpec] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.fail_start: str | None = None  # a DriverError message for every start
        self.exec_result: tuple[int, str] = (0, "ok")
        self._lock = threading.Lock()

    # --- test controls -------------------------------------------------------------

    def plant(
        self, alloc_id: str, task: str, *, running: bool = True, exit_code: int | None = None
    ) -> TaskState:
        """A task that already exists (e.g. left by a previous agent)."""
        st = TaskState(
            alloc_id=alloc_id,
            task=task,
            driver=self.name,
            handle=f"c{next(_ids):06d}",
            state=RUNNING if running else EXITED,
            node=self.node,
            exit_code=None if running else exit_code,
            started_at=time.time(),
        )
        with self._lock:
            self.tasks[(alloc_id, task)] = st
        return st

    def exit(self, alloc_id: str, task: str, code: int = 1, oom: bool = False) -> None:
        with self._lock:
            st = self.tasks[(alloc_id, task)]
            self.tasks[(alloc_id, task)] = replace(
                st, state=EXITED, exit_code=code, finished_at=time.time(), oom_killed=oom
            )

    def vanish(self, alloc_id: str, task: str) -> None:
        with self._lock:
            self.tasks.pop((alloc_id, task), None)

    def running(self) -> list[TaskState]:
        with self._lock:
            return [st for st in self.tasks.values() if st.running]

    def count(self, call: str) -> int:
        return sum(1 for c in self.calls if c[0] == call)

    # --- the Driver protocol ---------------------------------------------------------

    def available(self) -> bool:
        return True

    def start(self, spec: TaskSpec) -> TaskState:
        self.calls.append(("start", spec.alloc_id, spec.task))
        if self.fail_start is not None:
            raise DriverError(self.fail_start)
        key = (spec.alloc_id, spec.task)
        with self._lock:
            existing = self.tasks.get(key)
            if existing is not None and existing.running:
                return existing
            st = TaskState(
                alloc_id=spec.alloc_id,
                task=spec.task,
                driver=self.name,
                handle=f"c{next(_ids):06d}",
                state=RUNNING,
                job=spec.job,
                group=spec.group,
                node=spec.node,
                job_version=spec.job_version,
                started_at=time.time(),
                ports={p.name: p.host_port for p in spec.ports},
            )
            self.tasks[key] = st
            self.specs[key] = spec
            return st

    def stop(self, alloc_id: str, task: str, timeout: float | None = None) -> TaskState:
        self.calls.append(("stop", alloc_id, task))
        with self._lock:
            st = self.tasks.get((alloc_id, task))
            if st is None:
                raise TaskNotFound(f"no task {task} of {alloc_id}")
            if st.running:
                st = replace(st, state=EXITED, exit_code=143, finished_at=time.time())
                self.tasks[(alloc_id, task)] = st
            return st

    def remove(self, alloc_id: str, task: str) -> None:
        self.calls.append(("remove", alloc_id, task))
        with self._lock:
            self.tasks.pop((alloc_id, task), None)

    def inspect(self, alloc_id: str, task: str) -> TaskState:
        with self._lock:
            st = self.tasks.get((alloc_id, task))
        if st is None:
            raise TaskNotFound(f"no task {task} of {alloc_id}")
        return st

    def list(self) -> list[TaskState]:
        with self._lock:
            return list(self.tasks.values())

    def logs(self, alloc_id: str, task: str, tail: int | None = 100) -> str:
        return ""

    def stats(self, alloc_id: str, task: str) -> TaskStats:
        return TaskStats(cpu_percent=0.0, memory_bytes=0)

    def exec_command(
        self, alloc_id: str, task: str, argv: list[str], timeout: float = 10.0
    ) -> tuple[int, str]:
        self.calls.append(("exec", alloc_id, task))
        return self.exec_result
