"""How an exec task's process starts: as whom, in which cgroup.

Under systemd the agent is root; a task run as the agent would read the
cluster key, the node's credentials and every other task's files. So a task
runs as its job's ``user`` (``nobody`` unless the submitter was granted more,
:mod:`domain.job_policy`), with that user's groups only, and in its own
cgroup (:mod:`agent.drivers.cgroups`). Both happen in the child between fork
and exec, in this order: enter the cgroup (which needs the agent's rights),
then drop to the user. An agent that is not root cannot switch users: it runs
tasks of its own user only and refuses the rest with a clear error.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from agent.drivers.base import DriverError
from domain.jobspec.privileges import DEFAULT_EXEC_USER

__all__ = ["RunAs", "child_setup", "resolve_user", "spawn"]


@dataclass(frozen=True, slots=True)
class RunAs:
    """A task's user: its name as the job gave it, uid, gid, groups."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @property
    def switches(self) -> bool:
        """Whether running as this user means leaving the agent's own."""
        return self.uid != os.geteuid()


def resolve_user(name: str | None) -> RunAs:
    """The task's user on this node (``None``: ``nobody``); DriverError when
    the node has no such user, or the agent cannot become it."""
    name = name or DEFAULT_EXEC_USER
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        if not name.isdigit():
            raise DriverError(f"user {name!r} does not exist on this node") from None
        uid = int(name)  # a bare uid: its own group, nothing else
        run_as = RunAs(name, uid, uid, (uid,))
    else:
        groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
        run_as = RunAs(name, entry.pw_uid, entry.pw_gid, tuple(groups))
    if run_as.switches and os.geteuid() != 0:
        try:
            me = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            me = str(os.geteuid())
        raise DriverError(
            f"the agent runs as {me!r}, not root, so it cannot run tasks as {name!r}: "
            f"set the task's user to {me!r}, or run the agent as root"
        )
    return run_as


def child_setup(run_as: RunAs, cgroup_procs: int | None) -> Callable[[], None] | None:
    """What the task's process runs after fork, before exec (``preexec_fn``):
    write its pid to its cgroup (``cgroup_procs``, a descriptor the agent
    opened) and drop to ``run_as``. None when there is nothing to do. Only
    system calls: nothing that could wait on a lock another thread held."""
    if cgroup_procs is None and not run_as.switches:
        return None

    def setup() -> None:
        if cgroup_procs is not None:
            os.write(cgroup_procs, str(os.getpid()).encode())
        if run_as.switches:
            os.setgroups(list(run_as.groups))
            os.setgid(run_as.gid)
            os.setuid(run_as.uid)

    return setup


def spawn(
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    run_as: RunAs,
    cgroup: Path | None,
    stdout: int | IO[bytes],
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as ``run_as`` in ``cgroup`` (None: none), in ``cwd``,
    in a session of its own, with only ``env``; DriverError saying why not."""
    try:
        procs = os.open(cgroup / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) if cgroup else None
    except OSError as exc:
        raise DriverError(f"cannot enter the task's cgroup: {exc.strerror or exc}") from exc
    try:
        return subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            preexec_fn=child_setup(run_as, procs),
        )
    except FileNotFoundError:
        raise DriverError(f"command not found: {argv[0]!r}") from None
    except PermissionError:
        raise DriverError(f"command not executable by user {run_as.name!r}: {argv[0]!r}") from None
    except subprocess.SubprocessError:  # preexec_fn failed: it cannot say more
        raise DriverError(
            f"cannot start {argv[0]!r}: entering its cgroup or becoming {run_as.name!r} failed"
        ) from None
    except OSError as exc:
        raise DriverError(f"cannot start {argv[0]!r}: {exc}") from exc
    finally:
        if procs is not None:
            os.close(procs)
