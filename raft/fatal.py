"""Errors after which a raft server must not go on, and how it stops.

A server that cannot make its journal durable, or whose log no longer matches
the cluster's, would acknowledge what it may lose or apply what the others did
not. It stops instead, as etcd and PostgreSQL do: the tick thread raises one
of these, raft.node stops ticking at once (no acknowledgement, vote or append
answer leaves after it), logs the message and exits the process with the
error's code, so a supervisor (systemd) sees which failure it was.
"""

from __future__ import annotations

import logging
import os

EXIT_STORAGE = 74  # EX_IOERR: the journal could not be written, reserved or flushed
EXIT_DIVERGED = 65  # EX_DATAERR: this server's applied log differs from the leader's
EXIT_TOO_OLD = 76  # EX_PROTOCOL: an entry or snapshot of a format newer than this server reads


class RaftFatal(Exception):
    """This server must stop; `str()` says what happened and what to do."""

    exit_code = 1


class JournalFailed(RaftFatal):
    """A journal write or flush failed: what it held may not be on disk."""

    exit_code = EXIT_STORAGE


class JournalFull(JournalFailed):
    """The journal could not reserve the disk space its next entry needs."""


class LogDiverged(RaftFatal):
    """An entry this server already applied differs from the one the leader
    sends for the same index: the state machines have diverged."""

    exit_code = EXIT_DIVERGED


class FormatTooNew(RaftFatal):
    """An entry or a snapshot of a format newer than this server understands
    (raft.formats): applying or skipping it would leave this server's state
    unlike the others', so it stops before applying anything of it; upgrading
    this server is the way out."""

    exit_code = EXIT_TOO_OLD


def exit_process(error: RaftFatal) -> None:
    """The daemon's reaction to a fatal raft error: flush the log, exit now.

    `os._exit`, not `sys.exit`: the asyncio loop and the other threads must
    not get to answer anything more (a reply could acknowledge a write this
    server cannot keep), and a clean shutdown would flush the journal again."""
    logging.shutdown()
    os._exit(error.exit_code)
