"""What one command changed: the change set events are derived from.

An FSM operation records every row it writes or deletes in the tables that
events speak about (raft.event_derivation.ANNOUNCED), with the row as it was
before the command; raft.event_derivation compares that with the row as it
is after, table by table. So an operation says what it changed, never which
events it causes, and a new operation that writes one of these tables gets
its events without a second registry to keep in step (Nomad derives its
events from a transaction's changes the same way: nomad/state/events.go).

Recording costs a dict entry per written row: no copy, since stored documents
are replaced, never mutated in place (raft.state), and the row before is the
document the table held.
"""

from __future__ import annotations

from typing import Any

# A recorded row: (the document before the command or None, what the command
# did to it when its event says so: a node's `action`).
Row = tuple[Any, str | None]

_NONE: dict[Any, Row] = {}


class Changes:
    """Per table, the rows one command wrote, in the order it first wrote them."""

    __slots__ = ("tables",)

    def __init__(self) -> None:
        self.tables: dict[str, dict[Any, Row]] = {}

    def wrote(self, table: str, key: Any, before: Any, action: str | None = None) -> None:
        """Record a write (or a delete) of `table[key]`; `before` is the row it
        replaced. A row written twice keeps its first `before`."""
        rows = self.tables.get(table)
        if rows is None:
            self.tables[table] = {key: (before, action)}
        elif key not in rows:
            rows[key] = (before, action)

    def rows(self, table: str) -> dict[Any, Row]:
        """key -> (before, action) of the rows written in `table` (read only)."""
        return self.tables.get(table, _NONE)
