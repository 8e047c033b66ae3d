"""The journal file under pysyncobj (raft.journal, raft.pysyncobj_journal):
its space is allocated before pysyncobj's mmap writes into it, so a full disk
is a JournalFull between two whole entries (pysyncobj alone dies of SIGBUS);
a failed flush is fatal and stays so; the term and vote are flushed before
they are used. pysyncobj's own FileJournal, on real files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pysyncobj.journal import FileJournal

from raft.fatal import EXIT_STORAGE, JournalFailed, JournalFull
from raft.journal import FAULT_FSYNC_ENV, Journal
from raft.pysyncobj_journal import hook_journal
from tests.raft.tmpfs import tmpfs

ENTRY = os.urandom(2000)


def hooked(path: Path) -> tuple[FileJournal, Journal]:
    log = FileJournal(str(path))
    journal = Journal(str(path), durable=True)
    hook_journal(log, journal)
    return log, journal


def test_the_file_grows_with_its_blocks_allocated_and_every_write_counted(tmp_path: Path) -> None:
    log, journal = hooked(tmp_path / "raft.journal")
    for i in range(1, 200):
        log.add(ENTRY, i, 1)
    st = os.stat(tmp_path / "raft.journal")
    assert st.st_blocks * 512 >= st.st_size > 200 * 2000  # no hole for a page fault to hit
    assert journal.mark() == 199
    log.deleteEntriesFrom(150)
    log.clear()
    assert journal.mark() == 201


def test_a_full_disk_is_an_error_between_entries_and_loses_none(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "1m") as disk:
        log, journal = hooked(disk / "raft.journal")
        added = 0
        with pytest.raises(JournalFull, match="no space left") as raised:
            for i in range(1, 10_000):
                log.add(ENTRY, i, 1)
                added = i
        assert raised.value.exit_code == EXIT_STORAGE
        assert added > 300 and len(log) == added  # refused before pysyncobj kept anything
        with pytest.raises(JournalFull):
            journal.check()  # and remembered
        journal.flush(journal.mark())  # what was written before is flushed fine
        reopened = FileJournal(str(disk / "raft.journal"))
        assert [e[1] for e in reopened] == list(range(1, added + 1))
        log._destroy()
        reopened._destroy()


SIGBUS_SCRIPT = """
import os, sys
from pysyncobj.journal import FileJournal
log = FileJournal(sys.argv[1])
for i in range(1, 10_000):
    log.add(os.urandom(2000), i, 1)
"""


def test_without_the_reservation_pysyncobj_dies_of_sigbus_on_a_full_disk(tmp_path: Path) -> None:
    """What the reservation prevents (pysyncobj 0.3.17 alone)."""
    with tmpfs(tmp_path / "disk", "1m") as disk:
        done = subprocess.run(
            [sys.executable, "-c", SIGBUS_SCRIPT, str(disk / "raft.journal")],
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == -signal.SIGBUS, done.stderr


def test_a_failed_flush_is_fatal_and_stays_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fault = tmp_path / "fault"
    monkeypatch.setenv(FAULT_FSYNC_ENV, str(fault))
    log, journal = hooked(tmp_path / "raft.journal")
    log.add(ENTRY, 1, 1)
    journal.flush(journal.mark())
    log.add(ENTRY, 2, 1)
    fault.touch()
    with pytest.raises(JournalFailed, match="flushing the journal .* failed") as raised:
        journal.flush(journal.mark())
    assert raised.value.exit_code == EXIT_STORAGE and "test fault" in str(raised.value)
    fault.unlink()
    with pytest.raises(JournalFailed):
        journal.check()  # no second chance: the pages may be gone (fsyncgate)


def test_the_term_and_vote_are_flushed_before_pysyncobj_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault = tmp_path / "fault"
    monkeypatch.setenv(FAULT_FSYNC_ENV, str(fault))
    log, _ = hooked(tmp_path / "raft.journal")
    log.setCurrentTerm(5, "127.0.0.1:7071")
    assert FileJournal(str(tmp_path / "raft.journal")).getVotedForNodeId() == "127.0.0.1:7071"
    fault.touch()  # every flush fails from now on
    with pytest.raises(JournalFailed):
        log.setCurrentTerm(6, None)  # flushed before it returns, so the failure shows
