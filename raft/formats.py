"""The format versions this server reads and writes, and the refusal of newer ones.

Three things outlive the code that wrote them: raft entries (in journals, and
on the wire to servers of another release), the commands inside them, and
snapshots (raft's own, and backups). Each carries a format number:

- an entry: its first element (`[ENTRY_FORMAT, [command, ...]]`, raft.commands);
- a command: an optional `"v"`, the format its op needs (absent: 1), so a
  release that adds an op or changes what one means marks only the commands
  that need it (an op a server does not know, without a newer `v`, is a bug
  or garbage: answered 400 `unknown_op`, applied nowhere);
- a snapshot: its `"format"` (raft.state), and a backup's header
  (domain.snapshot_archive) says it again.

A server meeting a format newer than it understands refuses it loudly and
before applying anything of it (`FormatTooNew`, raft.fatal): the tick thread
stops and the process exits (code 76), because skipping an entry the others
apply would silently diverge this server's state (README, "Upgrading": upgrade
one server at a time; a release writes a newer format only once every server
reads it). Servers of releases before formats existed (before this module)
skip what they do not read instead: a restore (raft.fsm_restore) needs every
server on a release that has it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from raft.fatal import FormatTooNew

ENTRY_FORMAT = 1  # the first element of every raft entry we write
COMMAND_FORMAT = 1  # the newest command format (a command's "v") this server applies
SNAPSHOT_FORMAT = 1  # the newest state snapshot format this server reads (and the one it writes)

__all__ = [
    "COMMAND_FORMAT",
    "ENTRY_FORMAT",
    "SNAPSHOT_FORMAT",
    "FormatTooNew",
    "check_commands",
    "check_entry_format",
    "check_snapshot_format",
]


def _newer(value: Any, known: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > known


def check_entry_format(marker: Any) -> None:
    """FormatTooNew when an entry's format is newer than ENTRY_FORMAT."""
    if _newer(marker, ENTRY_FORMAT):
        raise FormatTooNew(
            f"raft: an entry of format {marker} reached this server, which reads format "
            f"{ENTRY_FORMAT} at most: upgrade this server (it stopped before applying it)"
        )


def check_commands(commands: Iterable[dict[str, Any] | None]) -> None:
    """FormatTooNew when any command of a batch needs a newer format than this
    server applies: checked for the whole batch before any of it is applied."""
    for cmd in commands:
        if cmd is None:
            continue
        if _newer(cmd.get("v"), COMMAND_FORMAT):
            raise FormatTooNew(
                f"raft: command {cmd.get('op')!r} of format {cmd['v']} reached this server, "
                f"which applies format {COMMAND_FORMAT} at most: upgrade this server "
                "(it stopped before applying it)"
            )
        if cmd.get("op") in ("state.restore", "state.restore.commit"):
            check_snapshot_format(cmd.get("format"), "a restored snapshot")


def check_snapshot_format(value: Any, what: str = "a snapshot") -> None:
    """FormatTooNew when a snapshot's format is newer than SNAPSHOT_FORMAT."""
    if _newer(value, SNAPSHOT_FORMAT):
        raise FormatTooNew(
            f"raft: {what} of format {value} reached this server, which reads format "
            f"{SNAPSHOT_FORMAT} at most: upgrade this server (it stopped before loading it)"
        )
