"""cgroup v2 for exec tasks: each task in a cgroup of its own, with limits.

An exec task is a plain process; without a cgroup its ``resources`` would be
a number the scheduler counts and nothing enforces, and a fork bomb or a leak
would take the node. So each task gets ``<root>/heroctl.slice/<alloc>-<task>``
with ``memory.max`` (its MB, no swap beyond) and ``cpu.max`` (its MHz as a
share of this host's cores), and the task's process enters it before it
execs (:mod:`agent.drivers.exec_spawn`), so everything it spawns is inside
too. When the task ends, what is left in the cgroup is killed and the cgroup
removed.

Where cgroup v2 is not there to write (a cgroup v1 or hybrid host, a
container with a read-only ``/sys/fs/cgroup``, an agent that is not root)
the driver runs tasks without one, and says so once in the log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

__all__ = ["CGROUP_ROOT", "Cgroups", "cpu_max"]

log = logging.getLogger("heroctl.agent")

CGROUP_ROOT = Path("/sys/fs/cgroup")
SLICE = "heroctl.slice"
CONTROLLERS = ("cpu", "memory")
PERIOD_US = 100_000
MIN_QUOTA_US = 1_000  # the kernel's minimum
KILL_WAIT = 2.0  # seconds for a cgroup's processes to die before it is removed


def cpu_max(mhz: int, mhz_per_core: int, cores: int) -> str:
    """``cpu.max`` for ``mhz`` of a host with ``cores`` of ``mhz_per_core``:
    "<quota> <period>" in microseconds, at most every core."""
    share = min(mhz / mhz_per_core, float(cores))
    return f"{max(MIN_QUOTA_US, int(share * PERIOD_US))} {PERIOD_US}"


class Cgroups:
    """Task cgroups under ``root`` (the cgroup v2 mount). :meth:`usable`
    decides once whether they can be made here; the rest assumes it."""

    def __init__(self, root: Path = CGROUP_ROOT) -> None:
        self.root = Path(root)
        self.slice = self.root / SLICE
        self._usable: bool | None = None

    def usable(self) -> bool:
        """Whether task cgroups with cpu and memory limits can be made here
        (the first call sets up the slice; the answer is kept, and a no is
        logged once with its reason)."""
        if self._usable is None:
            reason = self._setup()
            self._usable = reason is None
            if reason is not None:
                log.warning(
                    "agent: exec tasks run without a cgroup (no cpu or memory limit): %s", reason
                )
        return self._usable

    def _setup(self) -> str | None:
        """None once the slice exists with the controllers its children need;
        otherwise why not."""
        try:
            available = (self.root / "cgroup.controllers").read_text().split()
        except OSError:
            return f"no cgroup v2 hierarchy at {self.root}"
        missing = [c for c in CONTROLLERS if c not in available]
        if missing:
            return f"cgroup v2 at {self.root} lacks the {', '.join(missing)} controller"
        try:
            self.slice.mkdir(exist_ok=True)
            for parent in (self.root, self.slice):
                enabled = (parent / "cgroup.subtree_control").read_text().split()
                wanted = [f"+{c}" for c in CONTROLLERS if c not in enabled]
                if wanted:
                    (parent / "cgroup.subtree_control").write_text(" ".join(wanted))
        except OSError as exc:
            return f"cannot set up {self.slice}: {exc.strerror or exc}"
        return None

    def path(self, alloc_id: str, task: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in alloc_id)
        return self.slice / f"{safe}-{task}"

    def create(self, alloc_id: str, task: str, *, cpu_max: str, memory_mb: int) -> Path:
        """The task's cgroup with its limits (made again if a previous run
        left it). OSError if the kernel refuses."""
        group = self.path(alloc_id, task)
        group.mkdir(exist_ok=True)
        (group / "memory.max").write_text(str(memory_mb * 2**20))
        with contextlib.suppress(OSError):  # no swap accounting: nothing to cap
            (group / "memory.swap.max").write_text("0")
        (group / "cpu.max").write_text(cpu_max)
        return group

    @staticmethod
    def remove(group: str | Path) -> None:
        """Kill what is left in ``group``, then remove it (best effort: a
        cgroup that will not go is logged, never an error of the task)."""
        group = Path(group)
        if not group.is_dir():
            return
        try:
            (group / "cgroup.kill").write_text("1")
        except OSError:  # before Linux 5.14: one by one
            for pid in _pids(group):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + KILL_WAIT
        while _pids(group) and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            group.rmdir()
        except OSError as exc:
            log.warning("agent: cannot remove cgroup %s: %s", group, exc.strerror or exc)


def _pids(group: Path) -> list[int]:
    try:
        return [int(p) for p in (group / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []
