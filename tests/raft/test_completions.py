"""Completions (raft.completions) over a real journal file (raft.journal): a
write is acknowledged only after its journal flush; a follower's reads are
not held up by it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raft.completions import OK, Completions
from raft.journal import Journal


class NotedJournal(Journal):
    """A journal that notes its syncs in `said`."""

    def __init__(self, said: list[Any], path: Path, durable: bool) -> None:
        self.said = said
        super().__init__(str(path), durable)

    def _sync(self, fd: int, full: bool = False) -> None:
        self.said.append("flush")
        super()._sync(fd, full)


def journal_and_completions(
    tmp_path: Path, durable: bool = True
) -> tuple[Journal, Completions, list[Any]]:
    said: list[Any] = []
    path = tmp_path / "raft.journal"
    path.write_bytes(b"")
    journal = NotedJournal(said, path, durable)

    def hand_over(done: list[Any], applied: int) -> None:
        said.append(("hand over", [token for token, _, _ in done], applied))

    return journal, Completions(journal, hand_over), said


def test_a_write_is_handed_over_after_the_flush(tmp_path: Path) -> None:
    journal, completions, said = journal_and_completions(tmp_path)
    journal.wrote()  # pysyncobj appended an entry
    completions.write_done("w", [{"ok": True}], OK)
    completions.deliver(is_leader=False, applied=2)
    assert said == ["flush", ("hand over", ["w"], 2)]


def test_a_followers_reads_go_first_and_the_flush_after(tmp_path: Path) -> None:
    journal, completions, said = journal_and_completions(tmp_path)
    journal.wrote()  # pysyncobj appended an entry
    completions.read_done("r", 2, OK)
    completions.deliver(is_leader=False, applied=2)
    assert said == [("hand over", ["r"], 2), "flush"]


def test_a_leader_flushes_first_and_only_what_grew(tmp_path: Path) -> None:
    journal, completions, said = journal_and_completions(tmp_path)
    journal.wrote()  # pysyncobj appended an entry
    completions.read_done("r", 2, OK)
    completions.deliver(is_leader=True, applied=2)
    assert not completions
    completions.deliver(is_leader=True, applied=2)  # nothing new: no flush
    assert said == ["flush", ("hand over", ["r"], 2), ("hand over", [], 2)]


def test_without_durability_nothing_is_synced(tmp_path: Path) -> None:
    journal, completions, said = journal_and_completions(tmp_path, durable=False)
    journal.wrote()  # pysyncobj appended an entry
    completions.write_done("w", [], OK)
    completions.deliver(is_leader=True, applied=2)
    assert said == [("hand over", ["w"], 2)]
