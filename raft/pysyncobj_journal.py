"""What we change in pysyncobj's journal file (`pysyncobj.journal.FileJournal`).

pysyncobj appends records through an mmap that it grows with `ftruncate`: the
new pages are holes, and writing into a hole on a full disk kills the process
with SIGBUS. It stores the term and vote in a `.meta` file it never fsyncs.
`hook_journal` wraps one FileJournal instance (nothing process-wide):

- every append first asks raft.journal for the space of its record (blocks
  allocated with posix_fallocate, so a full disk is a `JournalFull` raised
  before pysyncobj touches its in-memory log or the file), and every change
  (append, truncation, rewrite) is counted, so a flush covers it;
- a rewrite of the log (`clear`, which pysyncobj calls after renaming a
  snapshot into place) first makes that rename durable;
- the meta file (term, vote, commit index) is written durably: pysyncobj
  writes it when the term or the vote changes, before it sends anything that
  reflects them (a vote, a request for votes), and at most once a second for
  the commit index. That one durable too (≈1.4 ms a second): a write that is
  not, renamed over the file, can leave it empty after a power loss, and the
  vote with it.
"""

from __future__ import annotations

from typing import Any

from pysyncobj.pickle import dumps

from raft.fatal import JournalFailed
from raft.journal import Journal

RECORD_OVERHEAD = 24  # pysyncobj's record: size, index, term, command, size


def hook_journal(log: Any, journal: Journal) -> None:
    """Reserve space, count writes and persist the term and vote for pysyncobj's `log`."""
    resizable = log._FileJournal__journalFile

    def reserve(end: int) -> None:
        mm = resizable._ResizableFile__mm
        size = journal.reserve(len(mm), end)
        if size > len(mm):
            try:
                mm.resize(size)
            except (OSError, SystemError) as e:
                error = JournalFailed(f"raft: cannot grow the journal {journal.path}: {e}")
                raise journal.fail(error) from e

    add, clear, delete_from = log.add, log.clear, log.deleteEntriesFrom

    def hooked_add(command: bytes, idx: int, term: int) -> None:
        end = log._FileJournal__currentOffset + len(command) + RECORD_OVERHEAD
        if end > journal.reserved:
            reserve(end)
        add(command, idx, term)
        journal.wrote()

    def hooked_clear() -> None:
        journal.sync_dir()
        clear()
        journal.wrote()

    def hooked_delete_from(entry_from: int) -> None:
        delete_from(entry_from)
        journal.wrote()

    def store_meta(values: dict[str, Any]) -> None:
        journal.replace_durably(meta_path, dumps(values))

    reserve(0)  # the holes of the file as it is (the first 1 KiB, a restart's tail)
    log.add, log.clear, log.deleteEntriesFrom = hooked_add, hooked_clear, hooked_delete_from
    meta = log._FileJournal__metaStorer
    meta_path = meta.getPath()
    meta.storeMeta = store_meta
