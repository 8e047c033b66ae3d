"""The raft journal on disk: its space reserved and its writes flushed by us
(pysyncobj does neither, notes/pysyncobj.md #5).

pysyncobj writes its log through an mmap of the journal file
(raft.pysyncobj_journal tells us about every write and asks us for space
before each). `Journal` makes those writes durable before anything that
depends on them is acknowledged (raft.completions decides when), reserves the
file's blocks before the mmap grows over them, and writes small files (the
term and vote) durably. Every failure is a `JournalFailed` (raft.fatal): the
server stops rather than acknowledge what may not be on disk. A failure is
also remembered (`check` raises it again): pysyncobj swallows every exception
around a snapshot load, journal writes included.

Test fault: with `HEROCTL_TEST_FAULT_FSYNC=<path>` in the environment, every
flush fails with EIO while `<path>` exists (tests/integration/test_durability.py).
"""

from __future__ import annotations

import errno
import os

from raft.fatal import JournalFailed, JournalFull, RaftFatal

FAULT_FSYNC_ENV = "HEROCTL_TEST_FAULT_FSYNC"
GROWTH_MAX = 64 * 2**20  # the file doubles, but by 64 MiB at most
GROWTH_MIN = 64 * 2**10  # what it grows by when doubling does not fit on the disk


class Journal:
    """Our file descriptor on pysyncobj's journal file, and its write count."""

    def __init__(self, path: str, durable: bool) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR)
        self._dir = os.path.dirname(os.path.abspath(path))
        self._durable = durable  # False only to measure what durability costs
        self._writes = 0
        self._flushed_at = -1  # the journal read at start may not be on disk yet
        self._reserved = 0
        self._fault = os.environ.get(FAULT_FSYNC_ENV) or None
        self._failure: RaftFatal | None = None

    def fail(self, error: RaftFatal) -> RaftFatal:
        """Remember `error` (the first one) for `check`; returns it, to raise."""
        self._failure = self._failure or error
        return error

    def check(self) -> None:
        """Raise the failure seen, if any, even one pysyncobj swallowed."""
        if self._failure is not None:
            raise self._failure

    def wrote(self) -> None:
        """pysyncobj changed the log (appended, truncated or rewrote it)."""
        self._writes += 1

    def mark(self) -> int:
        """The log's write count: what a flush covers."""
        return self._writes

    def flushed(self, mark: int) -> bool:
        """Whether the log is unchanged since the flush at `mark`. Only a
        changed log needs flushing: the commit index pysyncobj keeps beside it
        can be recomputed after a crash."""
        return mark == self._flushed_at

    def flush(self, mark: int) -> None:
        if self._durable:
            self._sync(self._fd)
        self._flushed_at = mark

    @property
    def reserved(self) -> int:
        """How far the file's blocks are allocated (0 until the first reserve)."""
        return self._reserved

    def reserve(self, mapped: int, end: int) -> int:
        """Allocate the file's blocks up to at least `end` and `mapped` (the
        file's length); returns its new length. An mmap write into a hole of a
        full disk kills the process with SIGBUS: with the blocks allocated
        first, a full disk is an ENOSPC here, on our code path."""
        if end <= mapped:
            sizes = [mapped]
        else:
            grown = mapped + min(max(mapped, GROWTH_MIN), GROWTH_MAX)
            sizes = [max(end, grown), -(-end // GROWTH_MIN) * GROWTH_MIN]
        for size in sizes:
            try:
                if size > self._reserved:
                    os.posix_fallocate(self._fd, self._reserved, size - self._reserved)
            except OSError as e:
                os.ftruncate(self._fd, mapped)  # a failed fallocate may have grown it
                if e.errno == errno.ENOSPC:
                    continue
                raise self.fail(
                    JournalFailed(f"raft: cannot reserve space for the journal {self.path}: {e}")
                ) from e
            self._reserved = size
            return size
        raise self.fail(
            JournalFull(
                f"raft: no space left on the disk of the journal {self.path} (it needs "
                f"{max(end, mapped)} bytes, {self._reserved} are reserved): this server stops "
                "before it acknowledges anything it could not write; free space on that "
                "filesystem and start it again"
            )
        )

    def replace_durably(self, path: str, data: bytes) -> None:
        """Write `path` through a temporary file and a rename, on disk when
        this returns (the term and vote must be before they are acted on)."""
        tmp = path + ".tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                if self._durable:
                    self._sync(fd, full=True)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as e:
            raise self.fail(JournalFailed(f"raft: cannot write {path}: {e}")) from e
        self.sync_dir()

    def sync_dir(self) -> None:
        """Make the renames in the data directory durable (a snapshot's
        before the journal entries it replaces are dropped)."""
        if not self._durable:
            return
        fd = os.open(self._dir, os.O_RDONLY)
        try:
            self._sync(fd, full=True)
        finally:
            os.close(fd)

    def close(self) -> None:
        try:
            self._sync(self._fd)
        finally:
            os.close(self._fd)

    def _sync(self, fd: int, full: bool = False) -> None:
        """fdatasync on the journal writes back the pages dirtied through
        pysyncobj's mmap, like msync, but releases the GIL while the disk works
        (CPython's mmap.flush holds it, freezing the API for the duration).

        A failure is fatal, never retried or worked around: after a failed
        fsync the kernel may have dropped the dirty pages, so a second call
        could succeed without the data being on disk (PostgreSQL's
        "fsyncgate")."""
        try:
            if self._fault is not None and os.path.exists(self._fault):
                raise OSError(errno.EIO, f"{os.strerror(errno.EIO)} (test fault {FAULT_FSYNC_ENV})")
            if full:
                os.fsync(fd)
            else:
                os.fdatasync(fd)
        except OSError as e:
            raise self.fail(
                JournalFailed(
                    f"raft: flushing the journal {self.path} failed: {e}; what it holds may "
                    "not be on disk, so this server stops acknowledging and exits; check the "
                    "disk, then start it again (it replays its journal and catches up)"
                )
            ) from e
