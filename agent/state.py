"""What the agent remembers about each allocation it runs, and how that
becomes the status it reports.

Nothing here does I/O. An :class:`AllocRuntime` is created the first time
an allocation shows up in the watch results, seeded from the document the
server sent (its ``status``, ``healthy`` and ``task_states``): an agent that
restarts (or whose daemon was ``kill -9``-ed) thus picks up where it left
off, and reports nothing while what it finds matches what the server knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.health import HealthTracker
from agent.restart import RestartPolicy, RestartTracker

__all__ = ["TaskRuntime", "AllocRuntime", "TERMINAL", "ms"]

PENDING = "pending"
RUNNING = "running"
DEAD = "dead"
TERMINAL = frozenset({"complete", "failed", "lost"})


def ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


@dataclass
class TaskRuntime:
    name: str
    driver: str
    restarts: RestartTracker
    state: str = PENDING  # pending | running | dead
    exit_code: int | None = None
    started_at: int | None = None  # ms
    finished_at: int | None = None  # ms
    failed: bool = False
    handle: str = ""
    next_start: float | None = None  # earliest (re)start; None: now
    restart_due: bool = False  # the next start is a restart
    check_ok: bool | None = None  # latest check result; None before the first
    check_output: str = ""
    last_error: str = ""

    def count_start(self, now: float, by_user: bool) -> bool:
        """A start is about to be attempted: whether it is a restart, counted
        (a user's outside the restart policy's window; the policy's when
        attempted, so one that cannot even start uses up the budget too)."""
        if by_user:
            self.restarts.total += 1
            return True
        if self.restart_due:
            self.restarts.restarted(now)
            self.restart_due = False
            return True
        return False

    def to_report(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "restarts": self.restarts.total,
            "exit_code": self.exit_code,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "failed": self.failed,
            "check_ok": self.check_ok,  # the live check (the ingress routes to passing ones)
        }


CONNECTIONS_RECHECK = 0.2  # seconds between counts of a stopping task's connections


@dataclass
class AllocRuntime:
    id: str
    doc: dict[str, Any]
    tasks: dict[str, TaskRuntime]
    health: HealthTracker | None
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (seq, event)
    event_seq: int = 0
    reported: tuple[Any, ...] | None = None  # the last state the server acknowledged
    failed: bool = False
    stopped: bool = False  # desired stop (or gone) and nothing of it is left
    # A user's restart request, by its raft index: the last one taken on
    # (`restart_seen`), the tasks of it still restarting, and the last one done
    # (`restart_handled`, reported: the server and `heroctl alloc restart` learn
    # it was carried out once every task of it started again).
    restart_seen: int = 0
    restarting: set[str] = field(default_factory=set)
    restart_handled: int = 0
    # A stop held until every node's ingress let go of it: until when at most
    # (None: not held yet), and whether it holds now (a wake-up is due then).
    release_by: float | None = None
    releasing: bool = False
    # A rainbow stop keeps the connections the allocation holds (sampled by
    # the supervisor: None until then) until they close or `keep_until`.
    connections: int | None = None
    keep_until: float | None = None
    keeping: bool = False
    recheck_at: float | None = None  # while keeping: when to count them again

    # --- construction ---------------------------------------------------------

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], now: float) -> AllocRuntime:
        group = doc.get("group_spec") or {}
        policy = RestartPolicy.from_spec(group.get("restart"))
        known: Mapping[str, Any] = doc.get("task_states") or {}
        tasks: dict[str, TaskRuntime] = {}
        for spec in group.get("tasks") or []:
            name = spec["name"]
            seen = known.get(name) or {}
            tracker = RestartTracker(policy, total=int(seen.get("restarts") or 0))
            state = seen.get("state") if seen.get("state") in (PENDING, RUNNING, DEAD) else PENDING
            tasks[name] = TaskRuntime(
                name=name,
                driver=spec.get("driver", "docker"),
                restarts=tracker,
                state=state,
                exit_code=seen.get("exit_code"),
                started_at=seen.get("started_at"),
                finished_at=seen.get("finished_at"),
                failed=bool(seen.get("failed")),
            )
        status = doc.get("status", PENDING)
        healthy = doc.get("healthy")
        health = None
        if doc.get("job_type", "service") == "service":
            health = HealthTracker.from_update(
                group.get("update"), began=now, healthy=healthy if healthy is not None else None
            )
        handled = doc.get("restart_handled")
        rt = cls(
            id=str(doc["id"]),
            doc=dict(doc),
            tasks=tasks,
            health=health,
            failed=status == "failed" or any(t.failed for t in tasks.values()),
            restart_handled=handled if isinstance(handled, int) else 0,
        )
        rt.restart_seen = rt.restart_handled
        rt.reported = rt._snapshot(
            status,
            healthy,
            {n: dict(known.get(n) or {}) for n in tasks},
            rt.restart_handled,
        )
        if status in TERMINAL:
            # Terminal on the server: never run again here, and nothing to
            # tell about it (its tasks are dead as far as anyone cares).
            for t in tasks.values():
                if t.state != DEAD:
                    t.state = DEAD
            rt.stopped = not rt.desired_run
            rt.reported = rt.snapshot()
        return rt

    # --- what it is ---------------------------------------------------------------

    @property
    def batch(self) -> bool:
        return self.doc.get("job_type") == "batch"

    @property
    def desired_run(self) -> bool:
        return self.doc.get("desired_status", "run") == "run"

    @property
    def lost(self) -> bool:
        return self.doc.get("status") == "lost"

    def holds_for_ingress(self, now: float, timeout: float) -> bool:
        """Whether its stop waits: the cluster says a node's ingress may still
        send it requests (``ingress_released: false``), for at most ``timeout``
        seconds from when this agent first saw that (a node whose ingress
        never answers holds no stop for ever)."""
        waiting = self.doc.get("ingress_released") is False
        if waiting and self.release_by is None:
            self.release_by = now + timeout
            self.event(now, "draining", "waiting until no node's ingress sends it requests")
        holds = waiting and self.release_by is not None and now < self.release_by
        if self.releasing and not holds:
            why = "no node's ingress sends it requests any more"
            if waiting:
                why = f"an ingress did not let go within {timeout:g}s: stopping anyway"
            self.event(now, "drained", why)
        self.releasing = holds
        return holds

    def keeps_connections(self) -> float | None:
        """Seconds a stop waits at most for the connections the allocation
        holds to close (None: it does not wait): a rainbow deployment's old
        version its ``drain_connections`` (the group's drain_timeout); any
        other allocation the ingress let go of its longest ``kill_timeout``,
        so the requests nginx's old workers still have in flight finish."""
        if self.desired_run:
            return None
        seconds = self.doc.get("drain_connections")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
            return float(seconds)
        if "ingress_released" not in self.doc:
            return None
        specs = (self.doc.get("group_spec") or {}).get("tasks") or []
        return max((float(t.get("kill_timeout", 5)) for t in specs), default=5.0)

    def holds_for_connections(self, now: float) -> bool:
        """Whether its stop waits for the connections it holds to close,
        :meth:`keeps_connections` seconds at most from when this agent first
        saw the stop (the supervisor samples them: agent.connections)."""
        seconds = self.keeps_connections()
        if seconds is None:
            return False
        if self.keep_until is None:
            self.keep_until = now + seconds
        holds = self.connections != 0 and now < self.keep_until
        if holds and not self.keeping:
            self.event(
                now, "draining", f"waiting for its open connections to close ({seconds:g}s at most)"
            )
        if self.keeping and not holds:
            why = "its connections closed"
            if self.connections:
                why = f"{seconds:g}s passed with {self.connections} connections open"
            self.event(now, "drained", why)
        self.keeping = holds
        self.recheck_at = now + CONNECTIONS_RECHECK if holds else None
        return holds

    def restart_request(self) -> tuple[int, str | None] | None:
        """A user's restart request not acted on yet: (its raft index, the
        task it names or None for every task), from the allocation document."""
        request = self.doc.get("restart_requested")
        if not isinstance(request, Mapping):
            return None
        index, task = request.get("index"), request.get("task")
        if not isinstance(index, int) or index <= self.restart_seen:
            return None
        return index, task if isinstance(task, str) else None

    def take_restart(self, index: int, tasks: set[str]) -> None:
        """Request ``index`` is taken on, restarting ``tasks`` (none: it is done)."""
        self.restart_seen = index
        self.restarting = set(tasks)
        if not tasks:
            self.restart_handled = index

    def restarted(self, task: str) -> None:
        """A task of the request taken on started again (or could not)."""
        self.restarting.discard(task)
        if not self.restarting:
            self.restart_handled = self.restart_seen

    def task_spec(self, name: str) -> dict[str, Any]:
        for spec in (self.doc.get("group_spec") or {}).get("tasks") or []:
            if spec["name"] == name:
                return spec
        raise KeyError(name)

    @property
    def status(self) -> str:
        if self.lost:
            return "lost"
        if self.failed or any(t.failed for t in self.tasks.values()):
            return "failed"
        if self.stopped:
            return "complete"
        states = [t.state for t in self.tasks.values()]
        if states and all(s == DEAD for s in states):
            return "complete"
        if RUNNING in states:
            return RUNNING
        return PENDING

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def healthy(self) -> bool | None:
        if self.health is None:
            return None
        if self.health.healthy is None and self.status == "failed":
            return False
        return self.health.healthy

    def health_ok(self) -> bool:
        """Every task running and every check passing (no check: running)."""
        if not self.tasks:
            return False
        for name, t in self.tasks.items():
            if t.state != RUNNING:
                return False
            if self.task_spec(name).get("check") and t.check_ok is not True:
                return False
        return True

    # --- reporting ---------------------------------------------------------------------

    @staticmethod
    def _snapshot(
        status: str,
        healthy: bool | None,
        task_states: Mapping[str, Mapping[str, Any]],
        restart_handled: int = 0,
        connections: int | None = None,
    ) -> tuple[Any, ...]:
        """What, when it changes, is worth a status update (times are not)."""
        return (
            status,
            healthy,
            restart_handled,
            connections,
            tuple(
                sorted(
                    (
                        name,
                        ts.get("state"),
                        int(ts.get("restarts") or 0),
                        ts.get("exit_code"),
                        bool(ts.get("failed")),
                        ts.get("check_ok"),  # the ingress routes on the live check
                    )
                    for name, ts in task_states.items()
                )
            ),
        )

    def snapshot(self) -> tuple[Any, ...]:
        return self._snapshot(
            self.status,
            self.healthy,
            {n: t.to_report() for n, t in self.tasks.items()},
            self.restart_handled,
            self.connections,
        )

    def pending_update(self) -> dict[str, Any] | None:
        """The status update to send, or None when the server knows it all.
        ``_seq`` (the last event's number) is ours: strip it before sending."""
        if self.lost:
            return None  # the cluster gave up on it; only clean up
        snap = self.snapshot()
        if snap == self.reported and not self.events:
            return None
        update = {
            "id": self.id,
            "status": self.status,
            "task_states": {n: t.to_report() for n, t in self.tasks.items()},
            "healthy": self.healthy,
            "events": [ev for _, ev in self.events],
            "_seq": self.event_seq,
        }
        if self.restart_handled:
            update["restart_handled"] = self.restart_handled
        if self.connections is not None:
            update["connections"] = self.connections
        return update

    def acknowledge(self, update: Mapping[str, Any]) -> None:
        """The server took ``update``: remember it, drop the events it carried."""
        self.reported = self._snapshot(
            update["status"],
            update["healthy"],
            update["task_states"],
            update.get("restart_handled", 0),
            update.get("connections"),
        )
        self.events = [(seq, ev) for seq, ev in self.events if seq > update["_seq"]]

    def event(self, now: float, kind: str, message: str, task: str | None = None) -> None:
        ev: dict[str, Any] = {"ts": ms(now), "type": kind, "message": message}
        if task is not None:
            ev["task"] = task
        self.event_seq += 1
        self.events.append((self.event_seq, ev))
        if len(self.events) > 50:  # a crash loop while the servers are away
            del self.events[: len(self.events) - 50]
