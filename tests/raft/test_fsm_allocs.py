"""FSM: nodes, plans, agent reports, in-place updates, job deletion."""

from __future__ import annotations

from typing import Any

from domain.jobspec import normalize_job
from raft.fsm import apply_batch
from raft.state import State


def job(count: int, image: str = "img:1") -> dict[str, Any]:
    return normalize_job({"name": "web", "image": image, "count": count})


class Log:
    def __init__(self) -> None:
        self.state = State()
        self.index = 1

    def do(self, op: str, **fields: Any) -> dict[str, Any]:
        self.index += 1
        return apply_batch(self.state, [{"op": op, "ts": self.index, **fields}], self.index)[0]


def placed(log: Log, count: int) -> list[dict[str, Any]]:
    doc = log.state.table("jobs")["web"]
    places = [
        {
            "id": f"a{log.index}-{i}",
            "name": f"web.web[{i}]",
            "group": "web",
            "index": i,
            "node": "n1",
            "job_version": doc["version"],
            "resources": {"cpu": 100, "memory": 128},
            "ports": {},
        }
        for i in range(count)
    ]
    result = log.do(
        "plan.apply",
        job="web",
        job_version=doc["version"],
        job_modify_index=doc["job_modify_index"],
        places=places,
    )
    assert result["ok"] and result["placed"] == count
    return places


def test_count_only_change_moves_allocations_in_place() -> None:
    log = Log()
    log.do(
        "node.register",
        node={"id": "n1", "name": "node-1", "resources": {"cpu": 4000, "memory": 4096}},
    )
    log.do("job.upsert", job=job(2))
    placed(log, 2)
    log.do("job.upsert", job=job(3))
    allocs = log.state.allocs_of(job="web")
    assert [a["job_version"] for a in allocs] == [1, 1]
    assert all(
        a["desired_status"] == "run" and a["events"][-1]["type"] == "updated" for a in allocs
    )
    log.do("job.upsert", job=job(3, image="img:2"))  # a real change: the scheduler rolls them
    assert [a["job_version"] for a in log.state.allocs_of(job="web")] == [1, 1]


def test_stale_plan_is_refused_and_delete_stops_allocations() -> None:
    log = Log()
    log.do(
        "node.register",
        node={"id": "n1", "name": "node-1", "resources": {"cpu": 4000, "memory": 4096}},
    )
    log.do("job.upsert", job=job(1))
    old = log.state.table("jobs")["web"]["job_modify_index"]
    log.do("job.upsert", job=job(1, image="img:2"))
    stale = log.do(
        "plan.apply",
        job="web",
        job_modify_index=old,
        places=[{"id": "x", "group": "web", "node": "n1"}],
    )
    assert stale["status"] == 409 and stale["error"] == "stale_plan"
    placed(log, 1)
    log.do("job.delete", name="web")
    assert [a["desired_status"] for a in log.state.allocs_of(job="web")] == ["stop"]


def test_agent_reports_only_for_its_own_node() -> None:
    log = Log()
    log.do(
        "node.register",
        node={"id": "n1", "name": "node-1", "resources": {"cpu": 4000, "memory": 4096}},
    )
    log.do("job.upsert", job=job(1))
    (p,) = placed(log, 1)
    r = log.do("alloc.update", node="n2", updates=[{"id": p["id"], "status": "running"}])
    assert r["applied"] == 0 and r["refused"] == [p["id"]]
    r = log.do(
        "alloc.update", node="n1", updates=[{"id": p["id"], "status": "running", "healthy": True}]
    )
    alloc = log.state.table("allocations")[p["id"]]
    assert r["applied"] == 1 and alloc["status"] == "running" and alloc["healthy"] is True
    log.do("node.status", id="n1", status="down")
    assert log.state.table("nodes")["n1"]["status"] == "down"


def test_stopping_a_running_allocation_records_its_drain_index() -> None:
    """The index the nodes' ingresses must have applied before the agent
    stops its tasks; a pending one (never served) and a lost one get none."""
    log = Log()
    log.do(
        "node.register",
        node={"id": "n1", "name": "node-1", "resources": {"cpu": 4000, "memory": 4096}},
    )
    log.do("job.upsert", job=job(2))
    running, pending = placed(log, 2)
    log.do("alloc.update", node="n1", updates=[{"id": running["id"], "status": "running"}])
    log.do("job.delete", name="web")
    allocs = log.state.table("allocations")
    assert allocs[running["id"]]["ingress_drain_index"] == log.index
    assert "ingress_drain_index" not in allocs[pending["id"]]


def test_a_node_acknowledges_the_ingress_model_it_applied_forward_only() -> None:
    log = Log()
    log.do("node.register", node={"id": "n1", "name": "node-1"})
    assert log.do("node.ingress_applied", id="n1", index=2)["applied"] == 2
    assert log.do("node.ingress_applied", id="n1", index=1)["applied"] == 2  # never back
    assert log.do("node.ingress_applied", id="n1", index=10**9)["applied"] == log.index
    assert log.do("node.ingress_applied", id="n2", index=1)["status"] == 404
    assert log.do("node.ingress_applied", id="n1", index="3")["status"] == 400
