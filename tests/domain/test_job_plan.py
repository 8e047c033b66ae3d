"""The plan's dry run (domain.job_plan) against what the cluster then does:
the real FSM stores the jobs and applies the plans, the real scheduler
places them, so a plan is compared with the submit it predicts."""

from __future__ import annotations

import copy
from typing import Any

from domain.job_plan import plan_job
from domain.jobspec import normalize_job
from domain.scheduler import schedule
from raft.fsm import apply_batch
from raft.state import State


def web(count: int = 3, image: str = "busybox:1", memory: int = 64, **job: Any) -> dict[str, Any]:
    return normalize_job(
        {
            "name": "web",
            **job,
            "groups": [
                {
                    "name": "app",
                    "count": count,
                    "update": {"max_parallel": 1},
                    "tasks": [
                        {
                            "name": "web",
                            "image": image,
                            "resources": {"cpu": 100, "memory": memory},
                        }
                    ],
                }
            ],
        }
    )


class Cluster:
    """Raft state driven through the FSM; `converge` is the scheduling
    controller's pass plus agents that report every placement running."""

    def __init__(self, nodes: int = 2) -> None:
        self.state = State()
        self.index = 1
        for i in range(nodes):
            self.do(
                "node.register",
                node={
                    "id": f"n{i}",
                    "name": f"node-{i}",
                    "resources": {"cpu": 4000, "memory": 1024},
                },
            )

    def do(self, op: str, **fields: Any) -> dict[str, Any]:
        self.index += 1
        (result,) = apply_batch(self.state, [{"op": op, "ts": self.index, **fields}], self.index)
        assert result["ok"], result
        return result

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.state.table("nodes").values())

    def allocs(self) -> list[dict[str, Any]]:
        return list(self.state.table("allocations").values())

    def job(self) -> dict[str, Any] | None:
        return self.state.table("jobs").get("web")

    def plan(self, spec: dict[str, Any]) -> dict[str, Any]:
        return plan_job(self.job(), spec, self.nodes(), self.allocs())

    def schedule_once(self) -> Any:
        job = self.job()
        assert job is not None
        plan = schedule(job, self.nodes(), self.allocs())
        self.do(
            "plan.apply",
            job="web",
            job_version=job["version"],
            job_modify_index=job["job_modify_index"],
            places=[p.to_dict() for p in plan.places],
            stops=[s.to_dict() for s in plan.stops],
            failures=[f.to_dict() for f in plan.failures],
        )
        for p in plan.places:
            update = {"id": p.alloc_id, "status": "running", "healthy": True}
            self.do("alloc.update", node=p.node_id, updates=[update])
        for s in plan.stops:
            self.do(
                "alloc.update", node=s.node_id, updates=[{"id": s.alloc_id, "status": "complete"}]
            )
        return plan

    def submit(self, spec: dict[str, Any]) -> Any:
        self.do("job.upsert", job=spec)
        return self.schedule_once()

    def live(self) -> list[dict[str, Any]]:
        return [a for a in self.allocs() if a["desired_status"] == "run"]


def counts(plan: dict[str, Any], group: str = "app") -> dict[str, int]:
    return {k: v for k, v in plan["groups"][group].items() if v}


def test_a_new_job_places_every_replica() -> None:
    c = Cluster()
    plan = c.plan(web(3))
    assert plan["diff"]["type"] == "added"
    assert (plan["job_modify_index"], plan["current_version"], plan["version"]) == (0, None, 0)
    assert counts(plan) == {"place": 3}
    assert plan["changes"] is True
    assert sorted(p["name"] for p in plan["places"]) == [f"web.app[{i}]" for i in range(3)]
    # The submit then does what the plan said, on the same nodes.
    done = c.submit(web(3))
    assert sorted((p.name, p.node_name) for p in done.places) == sorted(
        (p["name"], p["node_name"]) for p in plan["places"]
    )


def test_the_same_spec_changes_nothing() -> None:
    c = Cluster()
    c.submit(web(3))
    plan = c.plan(web(3))
    assert plan["diff"]["type"] == "none"
    assert counts(plan) == {"ignore": 3}
    assert plan["places"] == plan["stops"] == plan["failures"] == []
    assert plan["changes"] is False
    assert plan["job_modify_index"] == c.job()["job_modify_index"]  # type: ignore[index]
    assert plan["version"] == c.job()["version"] + 1  # type: ignore[index]


def test_an_image_change_is_a_destructive_rolling_update() -> None:
    c = Cluster()
    c.submit(web(3))
    plan = c.plan(web(3, image="busybox:2"))
    assert plan["diff"]["groups"][0]["tasks"][0]["fields"] == [
        {"name": "image", "type": "edited", "old": "busybox:1", "new": "busybox:2"}
    ]
    # max_parallel 1: one replaced now, two waiting for it to be healthy.
    assert counts(plan) == {"destructive_update": 3, "deferred": 2}
    assert [p["reason"] for p in plan["places"]] == ["update"]
    assert plan["places"][0]["previous_alloc"] == plan["stops"][0]["id"]
    assert plan["changes"] is True
    done = c.submit(web(3, image="busybox:2"))
    assert [p.reason for p in done.places] == ["update"] and done.deferred == {"app": 2}


def test_scaling_up_and_down_moves_the_others_in_place() -> None:
    c = Cluster()
    c.submit(web(3))
    up = c.plan(web(5))
    assert counts(up) == {"place": 2, "in_place_update": 3}
    assert up["diff"]["groups"][0]["fields"] == [
        {"name": "count", "type": "edited", "old": 3, "new": 5}
    ]
    down = c.plan(web(1))
    assert counts(down) == {"stop": 2, "in_place_update": 1}
    assert all(s["reason"] == "scaled down to 1" for s in down["stops"])
    c.submit(web(1))
    assert len(c.live()) == 1


def test_a_job_field_alone_updates_in_place_and_creates_nothing() -> None:
    c = Cluster()
    c.submit(web(2))
    plan = c.plan(web(2, meta={"owner": "ops"}))
    assert plan["diff"]["type"] == "edited"
    assert counts(plan) == {"in_place_update": 2}
    assert plan["changes"] is False  # as `nomad job plan`: no allocation created or destroyed


def test_what_cannot_be_placed_is_said_in_words() -> None:
    c = Cluster()
    plan = c.plan(web(2, memory=4096))
    assert counts(plan) == {"unplaced": 2}
    (failure,) = plan["failures"]
    assert failure["count"] == 2 and "no node has 4096 MB free" in failure["reason"]
    assert plan["changes"] is True


def test_a_removed_group_stops_its_allocations() -> None:
    c = Cluster()
    c.submit(web(2))
    other = normalize_job(
        {"name": "web", "groups": [{"name": "db", "tasks": [{"name": "d", "image": "pg:16"}]}]}
    )
    plan = c.plan(other)
    assert counts(plan, "app") == {"stop": 2}
    assert counts(plan, "db") == {"place": 1}
    assert [g["type"] for g in plan["diff"]["groups"]] == ["added", "deleted"]


def test_the_plan_changes_none_of_its_inputs() -> None:
    c = Cluster()
    c.submit(web(3))
    job, nodes, allocs = c.job(), c.nodes(), c.allocs()
    before = copy.deepcopy((job, nodes, allocs))
    plan_job(job, web(5, image="busybox:2"), nodes, allocs)
    assert (job, nodes, allocs) == before
