"""What Linux's /proc says about a process and its process group.

The exec driver's tasks are plain processes, each leading its own process
group. Whether one still runs (and is still the same process: a pid may be
recycled, its start ticks may not), which processes its group holds, and
what they use all come from ``/proc/<pid>/stat``: read here, and nowhere
else, so the field numbers live in one place.
"""

from __future__ import annotations

import os

__all__ = ["alive", "group_members", "group_usage", "start_ticks"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (field 3 = index 0)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def alive(pid: int, start_ticks: int | None) -> bool:
    fields = _proc_stat(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return start_ticks is None or int(fields[19]) == start_ticks


def group_members(pgid: int) -> list[tuple[int, list[str]]]:
    """Live (non-zombie) processes of a process group."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if fields and len(fields) > 21 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            out.append((int(entry.name), fields))
    return out


def group_usage(members: list[tuple[int, list[str]]]) -> tuple[int, int]:
    """(cpu time in ns, resident memory in bytes) of :func:`group_members`."""
    ticks = sum(int(f[11]) + int(f[12]) for _, f in members)  # utime + stime
    rss = sum(int(f[21]) for _, f in members) * _PAGE
    return ticks * 1_000_000_000 // _TICKS, rss
