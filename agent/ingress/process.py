"""nginx as a child process: start it, know when it listens, confirm a reload,
and make sure nothing of it outlives us.

nginx runs in a session of its own (``start_new_session``): its master and
workers share one process group whose id is the master's pid. That matters
because a master killed with SIGKILL leaves its workers running, still
holding the listening sockets (measured: they keep serving); killing the
group is the only way to be sure the next master can bind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

from agent.ingress.paths import Paths

__all__ = [
    "NginxError",
    "spawn",
    "listening_ports",
    "listening_sockets",
    "socket_inodes",
    "wait_listening",
    "group_members",
    "kill_group",
    "reap_stale",
    "confirm_reload",
    "wait_detached",
    "tail",
]


class NginxError(RuntimeError):
    """nginx refused a configuration, did not start, or did not reload."""


async def spawn(nginx: str, paths: Paths) -> asyncio.subprocess.Process:
    """``nginx -p PREFIX -c conf/nginx.conf -g 'daemon off;'`` in its own session;
    what it says before its error log is open goes to ``logs/nginx.stderr``."""
    stderr = os.open(paths.stderr_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return await asyncio.create_subprocess_exec(
            nginx,
            "-p",
            f"{paths.prefix}/",
            "-c",
            str(paths.live_conf),
            "-g",
            "daemon off;",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    finally:
        os.close(stderr)


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process ``pid`` has open."""
    inodes: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


def listening_sockets(pid: int) -> dict[str, int]:
    """Inode -> TCP port of the listening sockets process ``pid`` holds (Linux
    /proc): a connect could be answered by someone else on the port, this cannot."""
    inodes = socket_inodes(pid)
    found: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:
                found[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def listening_ports(pid: int) -> set[int]:
    return set(listening_sockets(pid).values())


async def wait_listening(
    proc: asyncio.subprocess.Process, ports: set[int], timeout: float, paths: Paths
) -> None:
    """Poll until the master holds every port, or raise ``NginxError`` (it exited,
    or the deadline passed) with what nginx said."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.returncode is not None:
            raise NginxError(f"nginx exited with {proc.returncode}: {_last_words(paths)}")
        if ports <= await asyncio.to_thread(listening_ports, proc.pid):
            return
        if time.monotonic() > deadline:
            raise NginxError(f"nginx did not listen on {sorted(ports)} within {timeout:g}s")
        await asyncio.sleep(0.02)


def _last_words(paths: Paths) -> str:
    """The last error nginx wrote (its stderr, else its error log)."""
    for path in (paths.stderr_log, paths.error_log):
        lines = [line for line in tail(path, 8192).splitlines() if "[emerg]" in line]
        if lines:
            return lines[-1].split("[emerg] ", 1)[-1]
    return "no error logged"


def tail(path: Path, size: int) -> str:
    """The last ``size`` bytes of a file as text ("" when it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _holds_prefix_files(pid: int, prefix: Path) -> bool:
    """Whether process ``pid`` has a file of ``prefix`` open (its logs)."""
    root = f"{prefix}/"
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(root):
                    return True
            except OSError:
                continue
    except OSError:
        return False
    return False


def reap_stale(paths: Paths) -> list[int]:
    """Kill an nginx a previous run left behind in this prefix (the agent was
    killed before it could stop it): it would hold our ports. Only processes
    of the recorded master's group that hold this prefix's files are touched,
    never a stranger that happens to reuse the pid."""
    try:
        pgid = int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return []
    stale = [pid for pid in group_members(pgid) if _holds_prefix_files(pid, paths.prefix)]
    for pid in stale:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while stale and time.monotonic() < deadline:
        stale = [pid for pid in stale if Path(f"/proc/{pid}").exists() and _alive(pid)]
        time.sleep(0.01)
    paths.pid_file.unlink(missing_ok=True)
    return stale


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return False
    return bool(fields) and fields[0] != "Z"


async def confirm_reload(error_log: Path, offset: int, master: int, timeout: float) -> str | None:
    """After SIGHUP: None once the master started new workers, else the error it
    logged (it keeps the old configuration and workers then). The master logs
    at ``notice`` level, ``PID#PID: start worker processes`` on success; a port
    it cannot bind is retried for ~2.5 s before ``still could not bind()``."""
    marker = f"{master}#{master}: "
    deadline = time.monotonic() + timeout
    last_emerg = ""
    while time.monotonic() < deadline:
        try:
            with error_log.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            text = ""
        for line in text.splitlines():
            if marker not in line:
                continue
            message = line.split(marker, 1)[1]
            if message.startswith("still could not bind()"):
                return last_emerg or message
            if "[emerg]" in line or "[alert]" in line:
                last_emerg = message
                if "bind() to" not in message:
                    return message
            elif message.startswith("start worker processes"):
                return None
        await asyncio.sleep(0.01)
    return f"nginx did not confirm the reload within {timeout:g}s"


async def wait_detached(workers: list[int], listening: set[str], timeout: float) -> bool:
    """Wait until the old workers closed the listening sockets (inodes in
    ``listening``) or exited: from then on every new connection meets the new
    configuration. They close them as soon as they handle the master's
    SIGQUIT, just after the new workers start; the connections they still
    hold are finished in the background."""
    deadline = time.monotonic() + timeout
    pending = list(workers)
    while pending:
        pending = [pid for pid in pending if _alive(pid) and socket_inodes(pid) & listening]
        if not pending:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True
