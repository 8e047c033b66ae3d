"""What the event tests share: a log that applies commands through the real
encoding, one raft entry per call, and a cluster with a placed job."""

from __future__ import annotations

from typing import Any

from raft.commands import decode_batch, encode_batch, encode_command
from raft.fsm import apply_batch
from raft.fsm_events import scan
from raft.state import State

WEB = {
    "name": "web",
    "type": "service",
    "groups": [{"name": "web", "count": 2, "tasks": [{"name": "web"}]}],
}


def cmd(op: str, ts: int = 1000, **fields: Any) -> dict[str, Any]:
    return {"op": op, "ts": ts, **fields}


class Log:
    """Applies commands through the real encoding, one raft entry per call."""

    def __init__(self) -> None:
        self.state = State()
        self.index = 1

    def apply(self, *commands: dict[str, Any]) -> list[dict[str, Any]]:
        self.index += 1
        entry = encode_batch([encode_command(c) for c in commands])
        return apply_batch(self.state, decode_batch(entry), self.index)

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        return scan(self.state, after, None, 100_000)[0]

    def types(self, after: int = 0) -> list[str]:
        return [e["type"] for e in self.events(after)]


def cluster_with_job() -> Log:
    """Nodes n1 and n2, job `web` (2 replicas) placed as a1 on n1 and a2 on n2."""
    log = Log()
    log.apply(cmd("node.register", node={"id": "n1", "name": "a"}))
    log.apply(cmd("node.register", node={"id": "n2", "name": "b"}))
    log.apply(cmd("job.upsert", job=WEB))
    jmi = log.state.table("jobs")["web"]["job_modify_index"]
    places = [
        {"id": "a1", "node": "n1", "group": "web", "job_version": 0},
        {"id": "a2", "node": "n2", "group": "web", "job_version": 0},
    ]
    log.apply(cmd("plan.apply", job="web", job_modify_index=jmi, places=places))
    return log
