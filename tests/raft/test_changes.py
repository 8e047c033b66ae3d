"""The change set of one command (raft.changes)."""

from __future__ import annotations

from raft.changes import Changes


def test_a_row_keeps_its_first_before_and_rows_keep_their_order() -> None:
    changes = Changes()
    first, second = {"v": 1}, {"v": 2}
    changes.wrote("nodes", "n2", None, "registered")
    changes.wrote("nodes", "n1", first, "drain")
    changes.wrote("nodes", "n1", second, "eligibility")  # written again in the same command
    assert list(changes.rows("nodes").items()) == [
        ("n2", (None, "registered")),
        ("n1", (first, "drain")),
    ]
    assert changes.rows("jobs") == {} and list(changes.tables) == ["nodes"]
