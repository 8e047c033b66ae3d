"""What a follower does with pysyncobj's `append_entries` that pysyncobj gets wrong.

**Acknowledgements after the flush.** pysyncobj answers an append at once, so
a follower acknowledged entries that were still only in the page cache.
`HeldAcks` keeps its answers (`next_node_idx`) until raft.node has flushed
the journal, once after each poll (one flush for all the appends it brought),
then sends them in order, consecutive successes to a node as one (the leader
keeps the highest): no CPU per write is added (docs/performance.md #11). A
success whose entry is no longer in the log with the same term (truncated
meanwhile) is dropped: the leader asks again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Entry = tuple[bytes, int, int]  # (command, index, term), as pysyncobj keeps them
EntryAt = Callable[[int], Entry | None]


class HeldAcks:
    """A follower's answers to appends, sent once the journal is flushed."""

    def __init__(self, entry_at: EntryAt, last_index: Callable[[], int], send: Callable[..., Any]):
        self._entry_at = entry_at
        self._last_index = last_index
        self._send = send
        self._held: list[tuple[Any, dict[str, Any], int | None]] = []

    def hold(
        self,
        node: Any,
        reset: bool = False,
        nextNodeIdx: int | None = None,  # noqa: N803 - pysyncobj's keyword
        success: bool = False,
    ) -> None:
        """pysyncobj's `__sendNextNodeIdx`, deferred."""
        index = self._last_index() + 1 if nextNodeIdx is None else nextNodeIdx
        term = None
        if success:
            entry = self._entry_at(index - 1)
            term = entry[2] if entry is not None else -1
            if self._held:  # a success right after another one to the same node says more
                last_node, last, _ = self._held[-1]
                if last_node is node and last["success"]:
                    if last["next_node_idx"] >= index:
                        return
                    self._held.pop()
        message = {
            "type": "next_node_idx",
            "next_node_idx": index,
            "reset": reset,
            "success": success,
        }
        self._held.append((node, message, term))

    def __bool__(self) -> bool:
        return bool(self._held)

    def release(self) -> None:
        """The journal is flushed: send what was held, in order."""
        if not self._held:
            return
        held, self._held = self._held, []
        for node, message, term in held:
            if term is not None:
                entry = self._entry_at(message["next_node_idx"] - 1)
                if entry is None or entry[2] != term:
                    continue  # no longer true; the leader will ask again
            self._send(node, message)
