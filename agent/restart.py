"""The group's restart policy, decided by the agent (never by Docker).

Pure: the caller passes the time. A task that exits gets one of three
answers:

* ``complete``: a batch task exited 0; it is done and is not restarted;
* ``restart`` at a time: the task is started again after ``delay``, as long
  as fewer than ``attempts`` restarts happened within the last ``interval``
  seconds; with ``mode: delay`` an exhausted budget means waiting until the
  oldest restart leaves the interval (then counting starts afresh);
* ``fail``: ``mode: fail`` and the budget is spent (or ``attempts`` is 0):
  the task, and with it the allocation, failed.

As in Nomad, a service task is restarted whatever its exit code (a service
is meant to run); a batch task only when it failed (non-zero exit, killed,
or vanished).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RestartPolicy", "RestartTracker", "Decision", "RESTART", "FAIL", "COMPLETE"]

RESTART = "restart"
FAIL = "fail"
COMPLETE = "complete"


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    attempts: int = 3
    interval: float = 300.0
    delay: float = 5.0
    mode: str = "fail"  # fail | delay

    @classmethod
    def from_spec(cls, doc: Mapping[str, Any] | None) -> RestartPolicy:
        """From a normalized group's ``restart`` (see domain.jobspec)."""
        doc = doc or {}
        return cls(
            attempts=int(doc.get("attempts", 3)),
            interval=float(doc.get("interval", 300)),
            delay=float(doc.get("delay", 5)),
            mode=str(doc.get("mode", "fail")),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # restart | fail | complete
    at: float | None = None  # when to start again (restart only)
    reason: str = ""


@dataclass
class RestartTracker:
    """Restarts of one task. ``total`` counts every restart (it is what the
    allocation reports); ``recent`` holds the times of those within the
    policy's interval."""

    policy: RestartPolicy
    total: int = 0
    recent: deque[float] = field(default_factory=deque)

    def _prune(self, now: float) -> None:
        while self.recent and self.recent[0] <= now - self.policy.interval:
            self.recent.popleft()

    def on_exit(self, now: float, exit_code: int | None, batch: bool) -> Decision:
        """What to do about a task that just exited with ``exit_code``
        (None: unknown, e.g. its container vanished)."""
        if batch and exit_code == 0:
            return Decision(COMPLETE, reason="exited successfully")
        code = "unknown exit code" if exit_code is None else f"exit code {exit_code}"
        self._prune(now)
        p = self.policy
        if len(self.recent) < p.attempts:
            return Decision(
                RESTART,
                at=now + p.delay,
                reason=f"{code}: restart {len(self.recent) + 1} of {p.attempts} "
                f"within {p.interval:g}s, in {p.delay:g}s",
            )
        if p.mode == "delay" and p.attempts > 0:
            at = max(now + p.delay, self.recent[0] + p.interval)
            return Decision(
                RESTART,
                at=at,
                reason=f"{code}: {p.attempts} restarts within {p.interval:g}s; "
                f"waiting {at - now:.0f}s (restart mode delay)",
            )
        if p.attempts == 0:
            return Decision(FAIL, reason=f"{code}: restarts are disabled (attempts 0)")
        return Decision(
            FAIL,
            reason=f"{code}: {p.attempts} restarts within {p.interval:g}s, giving up "
            "(restart mode fail)",
        )

    def restarted(self, now: float) -> None:
        """Record a restart that actually happened (the task started again)."""
        self._prune(now)
        self.recent.append(now)
        self.total += 1
