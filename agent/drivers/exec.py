"""The exec driver: each task is a plain process, for hosts without Docker.

Same contract as the docker driver (see :mod:`agent.drivers.base`); every
call blocks (waiting for a process to stop), so the agent calls it from an
executor.

* Each task runs in its own session and process group (``setsid``), so a
  stop signals the task and everything it spawned, and the agent's own
  signals (Ctrl-C, a restart) never reach it.
* Its environment is a clean one (``PATH``, ``HOME``, the task env and the
  ``HEROCTL_*`` variables); the agent's environment is not inherited, and
  the env is handed to ``execve`` only: it is never written to a file.
* Output (stdout and stderr, interleaved) is appended to
  ``<state_dir>/exec/<alloc>/<task>/output.log``.
* What the driver knows lives in memory plus a small state file
  (:mod:`agent.drivers.exec_tasks`), so after an agent restart
  :meth:`ExecDriver.list` finds the processes still running and adopts
  them. Their start ticks (:mod:`agent.drivers.procfs`) guard against a
  recycled pid.
* A process the driver started itself gives its exit code; one adopted
  after a restart is not our child, so its exit code is unknown (None).
* Ports are the host ports themselves (a process binds its
  ``HEROCTL_PORT_<NAME>`` on ``HEROCTL_IP_<NAME>``).
* It runs as its ``user`` (``nobody`` by default), never as the agent
  unless told so, in a cgroup of its own with its cpu and memory as limits
  where cgroup v2 allows it (:mod:`agent.drivers.exec_spawn`,
  :mod:`agent.drivers.cgroups`). Its working directory (and ``HOME``) is
  ``<alloc>/<task>/work``, owned by that user, which it reaches as its
  working directory: the directories above stay the agent's (0700), so no
  task reaches another's files or the agent's. The output file beside it is
  the agent's too, so the task can neither read it back nor swap it for a
  link to a file it may not read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

from agent.drivers.base import (
    EXITED,
    RUNNING,
    DriverError,
    TaskNotFound,
    TaskSpec,
    TaskState,
    TaskStats,
    host_cpu,
)
from agent.drivers.cgroups import Cgroups, cpu_max
from agent.drivers.exec_spawn import resolve_user, spawn
from agent.drivers.exec_tasks import STATE_FILE, ExecTask, load_tasks, save_tasks
from agent.drivers.procfs import alive, group_members, group_usage, start_ticks

__all__ = ["ExecDriver"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ExecDriver:
    """Exec tasks of one node; ``state_dir`` is the agent's data directory,
    ``cgroups`` where task cgroups are made (default: /sys/fs/cgroup)."""

    name = "exec"

    def __init__(
        self, node: str, state_dir: str | os.PathLike[str], cgroups: Cgroups | None = None
    ) -> None:
        self.node = node
        self.cgroups = cgroups if cgroups is not None else Cgroups()
        self._cores, self._mhz = host_cpu()
        self.state_dir = Path(state_dir)
        self.tasks_dir = self.state_dir / "exec"
        self.tasks_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.state_path = self.state_dir / STATE_FILE
        self._lock = threading.RLock()
        self._tasks = load_tasks(self.state_path, self.node)
        self._prev_cpu: dict[tuple[str, str], tuple[int, float]] = {}

    def _save(self) -> None:
        save_tasks(self.state_path, self.node, self._tasks.values())

    # --- helpers ------------------------------------------------------------------

    def _get(self, alloc_id: str, task: str) -> ExecTask:
        found = self._tasks.get((alloc_id, task))
        if found is None:
            raise TaskNotFound(f"no process for task {task!r} of allocation {alloc_id}")
        return found

    def _refresh(self, t: ExecTask) -> bool:
        """Whether the task still runs; records its end when it does not."""
        if t.finished_at is not None:
            return False
        if t.popen is not None:
            code = t.popen.poll()
            if code is None:
                return True
            # Killed by a signal: report it the way a shell (and Docker) does.
            t.exit_code = 128 - code if code < 0 else code
        elif alive(t.pid, t.start_ticks):
            return True
        t.finished_at = time.time()
        if not group_members(t.pid):
            self._release_cgroup(t)  # nothing left in it
        self._save()
        return False

    def _cgroup(self, spec: TaskSpec) -> Path | None:
        """The task's cgroup with its limits; None where there can be none."""
        if not self.cgroups.usable():
            return None
        limit = cpu_max(spec.cpu, self._mhz, self._cores)
        try:
            return self.cgroups.create(
                spec.alloc_id, spec.task, cpu_max=limit, memory_mb=spec.memory
            )
        except OSError as exc:
            raise DriverError(f"cannot create the task's cgroup: {exc.strerror or exc}") from exc

    @staticmethod
    def _release_cgroup(t: ExecTask) -> None:
        """Kill what is left of an ended task, wherever it went, and remove its cgroup."""
        if t.cgroup is not None:
            Cgroups.remove(t.cgroup)
            t.cgroup = None

    def _state(self, t: ExecTask) -> TaskState:
        running = self._refresh(t)
        return TaskState(
            alloc_id=t.alloc_id,
            task=t.task,
            driver=self.name,
            handle=str(t.pid),
            state=RUNNING if running else EXITED,
            job=t.job,
            group=t.group,
            node=t.node,
            job_version=t.job_version,
            exit_code=None if running else t.exit_code,
            started_at=t.started_at,
            finished_at=None if running else t.finished_at,
            ports=dict(t.ports),
            labels=dict(t.labels),
        )

    def task_dir(self, alloc_id: str, task: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in alloc_id)
        return self.tasks_dir / safe / task

    # --- the Driver contract ----------------------------------------------------

    def available(self) -> bool:
        return os.name == "posix"

    def start(self, spec: TaskSpec) -> TaskState:
        if spec.node != self.node:
            raise DriverError(f"task is for node {spec.node!r}, this driver runs {self.node!r}")
        if not spec.command:
            raise DriverError(f"task {spec.task!r} has no command")
        with self._lock:
            existing = self._tasks.get((spec.alloc_id, spec.task))
            if existing is not None and self._refresh(existing):
                return self._state(existing)  # adopt: never a second copy
            if existing is not None:
                self._release_cgroup(existing)  # what its last run left behind
            run_as = resolve_user(spec.user)
            workdir = self.task_dir(spec.alloc_id, spec.task)
            home = workdir / "work"
            for directory in (workdir.parent, workdir, home):  # closed to every other task
                directory.mkdir(exist_ok=True, mode=0o700)
            if os.geteuid() == 0:
                os.chown(home, run_as.uid, run_as.gid, follow_symlinks=False)
            log_path = workdir / "output.log"
            # Exec tasks listen on the host port itself: no port mapping.
            direct = replace(spec, ports=tuple(replace(p, to=None) for p in spec.ports))
            env = {"PATH": os.environ.get("PATH", DEFAULT_PATH), "HOME": str(home)}
            env.update(direct.env_with_secrets())
            cgroup = self._cgroup(spec)
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            try:
                popen = spawn(
                    list(spec.command), env=env, cwd=home, run_as=run_as, cgroup=cgroup, stdout=fd
                )
            except DriverError:
                if cgroup is not None:
                    Cgroups.remove(cgroup)
                raise
            finally:
                os.close(fd)
            task = ExecTask(
                alloc_id=spec.alloc_id,
                task=spec.task,
                job=spec.job,
                group=spec.group,
                node=spec.node,
                job_version=spec.job_version,
                pid=popen.pid,
                start_ticks=start_ticks(popen.pid),
                started_at=time.time(),
                kill_timeout=spec.kill_timeout,
                log_path=str(log_path),
                ports={p.name: p.host_port for p in spec.ports},
                labels=spec.all_labels(),
                user=run_as.name,
                cgroup=str(cgroup) if cgroup else None,
                popen=popen,
            )
            self._tasks[(spec.alloc_id, spec.task)] = task
            self._prev_cpu.pop((spec.alloc_id, spec.task), None)
            self._save()
            return self._state(task)

    def stop(self, alloc_id: str, task: str, timeout: float | None = None) -> TaskState:
        with self._lock:
            t = self._get(alloc_id, task)
        wait = t.kill_timeout if timeout is None else timeout
        if self._refresh(t) or group_members(t.pid):
            self._signal_group(t, signal.SIGTERM)
            deadline = time.monotonic() + max(0.0, wait)
            while time.monotonic() < deadline:
                self._refresh(t)
                if t.finished_at is not None and not group_members(t.pid):
                    break
                time.sleep(0.02)
            if group_members(t.pid) or self._refresh(t):
                self._signal_group(t, signal.SIGKILL)
                deadline = time.monotonic() + 5.0
                while self._refresh(t) and time.monotonic() < deadline:
                    time.sleep(0.01)
        if t.cgroup is not None:
            self._release_cgroup(t)
            with self._lock:
                self._save()
        with self._lock:
            return self._state(t)

    def _signal_group(self, t: ExecTask, sig: signal.Signals) -> None:
        # The task leads its own process group (setsid), so pgid == pid.
        # Only signal it while the leader is ours, or the group still has
        # members: a recycled pid must never be signalled.
        if t.finished_at is None and not (t.popen is not None or alive(t.pid, t.start_ticks)):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(t.pid, sig)

    def remove(self, alloc_id: str, task: str) -> None:
        with self._lock:
            t = self._tasks.get((alloc_id, task))
        if t is None:
            return
        self.stop(alloc_id, task, timeout=0)
        with self._lock:
            self._tasks.pop((alloc_id, task), None)
            self._prev_cpu.pop((alloc_id, task), None)
            self._save()
        workdir = Path(t.log_path).parent
        shutil.rmtree(workdir, ignore_errors=True)
        with contextlib.suppress(OSError):
            workdir.parent.rmdir()  # the allocation's directory, once empty

    def inspect(self, alloc_id: str, task: str) -> TaskState:
        with self._lock:
            return self._state(self._get(alloc_id, task))

    def list(self) -> list[TaskState]:
        with self._lock:
            return [self._state(t) for t in list(self._tasks.values())]

    def exec_command(
        self, alloc_id: str, task: str, argv: list[str], timeout: float = 10.0
    ) -> tuple[int, str]:
        """Run ``argv`` beside the task (a ``command`` health check), as its
        user, in its directory and cgroup, with a clean environment: (exit
        code, output)."""
        with self._lock:
            t = self._get(alloc_id, task)
        home = Path(t.log_path).parent / "work"
        env = {"PATH": os.environ.get("PATH", DEFAULT_PATH), "HOME": str(home)}
        env.update({"HEROCTL_ALLOC_ID": alloc_id, "HEROCTL_TASK": task, "HEROCTL_JOB": t.job})
        try:
            run_as = resolve_user(t.user)
            cgroup = Path(t.cgroup) if t.cgroup and Path(t.cgroup).is_dir() else None
            proc = spawn(
                list(argv), env=env, cwd=home, run_as=run_as, cgroup=cgroup, stdout=subprocess.PIPE
            )
        except DriverError as exc:
            return 127, str(exc)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return 124, f"timed out after {timeout:g}s"
        return proc.returncode, out.decode("utf-8", errors="replace")

    def logs(self, alloc_id: str, task: str, tail: int | None = 100) -> str:
        with self._lock:
            t = self._get(alloc_id, task)
        try:
            with open(t.log_path, "rb") as f:
                if tail is None:
                    return f.read().decode("utf-8", errors="replace")
                size = f.seek(0, os.SEEK_END)
                chunk = 64 * 1024
                data = b""
                while size > 0 and data.count(b"\n") <= tail:
                    step = min(chunk, size)
                    size -= step
                    f.seek(size)
                    data = f.read(step) + data
        except FileNotFoundError:
            return ""
        lines = deque(data.decode("utf-8", errors="replace").splitlines(keepends=True), tail)
        return "".join(lines) if tail > 0 else ""

    def stats(self, alloc_id: str, task: str) -> TaskStats:
        with self._lock:
            t = self._get(alloc_id, task)
        if not self._refresh(t):
            raise DriverError(f"task {task!r} of allocation {alloc_id} is not running")
        members = group_members(t.pid)
        usage_ns, rss = group_usage(members)
        now = time.time()
        key = (alloc_id, task)
        with self._lock:
            prev = self._prev_cpu.get(key)
            self._prev_cpu[key] = (usage_ns, now)
        percent = 0.0
        if prev is not None and now > prev[1] and usage_ns >= prev[0]:
            percent = (usage_ns - prev[0]) / ((now - prev[1]) * 1e9) * 100.0
        return TaskStats(
            cpu_percent=round(percent, 2),
            memory_bytes=rss,
            memory_limit_bytes=None,
            pids=len(members),
            at=now,
        )
