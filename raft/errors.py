"""What a write or a read through raft can fail with, and nothing else.

Kept apart from the node and the bridge so the HTTP layer can map these to
the contract's errors (httpkit.errors) without loading pysyncobj: a
worker-only node's agent serves the same error envelope and never runs raft.
"""

from __future__ import annotations


class NoLeader(Exception):
    """No leader answered in time: nothing was done, or (OutcomeUnknown) a
    write was proposed and may still be committed."""


class OutcomeUnknown(NoLeader):
    """A write was proposed and no leader confirmed it in time: it may still
    be committed, so repeating it may apply it twice."""


class RaftRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CommandError(ValueError):
    """A command that must not be proposed (caught before it reaches the log)."""


class CommandRejected(Exception):
    """The FSM refused a command (a 4xx for the caller)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
