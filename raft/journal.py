"""The raft journal on disk: flushed by us, since pysyncobj never flushes it
(notes/pysyncobj.md #5).

pysyncobj writes its log through an mmap of the journal file; `Journal`
makes those writes durable before anything that depends on them is
acknowledged (raft.completions decides when).
"""

from __future__ import annotations

import os
from typing import Any


class Journal:
    """pysyncobj's journal (its log object) and our file descriptor on it."""

    def __init__(self, log: Any, path: str, durable: bool) -> None:
        self._log = log
        self._fd = os.open(path, os.O_RDWR)
        self._durable = durable  # False only to measure what durability costs
        self._flushed_at = -1

    def mark(self) -> int:
        """The log's length: what a flush covers."""
        return len(self._log)

    def flushed(self, mark: int) -> bool:
        """Whether the log had this length at the last flush. Only a grown (or
        compacted) log needs flushing: the commit index pysyncobj keeps in the
        journal header can be recomputed after a crash."""
        return mark == self._flushed_at

    def flush(self, mark: int) -> None:
        if self._durable:
            self._sync()
        self._flushed_at = mark

    def close(self) -> None:
        self._sync()
        os.close(self._fd)

    def _sync(self) -> None:
        """fdatasync on the file writes back the pages dirtied through
        pysyncobj's mmap, like msync, but releases the GIL while the disk works
        (CPython's mmap.flush holds it, freezing the API for the duration)."""
        try:
            os.fdatasync(self._fd)
        except OSError:
            self._log.flush()
