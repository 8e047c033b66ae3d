"""Image pulls while `heroctl job run` follows a version: what its
allocations' nodes say of their pulls (`pulling image X`, its progress,
`pulled image X (N MB) in T s`), each said once.

The allocation listing carries each allocation's newest event
(`last_event`), so following costs no read per allocation; a pull that
starts and ends between two reads shows only its last line, or none once
the task started.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cli.output import fmt_duration_ms, short_id

__all__ = ["PULL_EVENTS", "PullLines", "pulling"]

PULL_EVENTS = frozenset({"pulling", "pulled"})


def pulling(alloc: dict[str, Any]) -> str | None:
    """What an allocation's node says of its image's pull, if that is the
    newest thing it said."""
    event = alloc.get("last_event")
    if isinstance(event, dict) and event.get("type") in PULL_EVENTS:
        return str(event.get("message") or "")
    return None


class PullLines:
    """The pull events of version ``version``'s allocations not shown yet."""

    def __init__(self, version: int | None = None) -> None:
        self.version = version
        self.seen: set[tuple[Any, ...]] = set()

    def lines(self, allocs: Iterable[dict[str, Any]], elapsed: float) -> list[str]:
        out = []
        for a in allocs:
            if self.version is not None and a.get("job_version") != self.version:
                continue
            message = pulling(a)
            if message is None:
                continue
            key = (a.get("id"), (a.get("last_event") or {}).get("ts"), message)
            if key in self.seen:
                continue
            self.seen.add(key)
            out.append(
                f"{fmt_duration_ms(elapsed * 1000):>7}  {short_id(a.get('id'))}  "
                f"{a.get('name')}  {a.get('node_name')}  {message}"
            )
        return out
