"""Scheduler alone: 5,000 simulated nodes, 50,000 allocations, one core.

No Docker, no raft: the pure scheduler (`domain.scheduler`) on generated
nodes and jobs. Three measurements:

* **fill**: 50 jobs of 1,000 replicas each (mixed cpu/memory asks, a dynamic
  port, some with constraints) placed one job after the other on 5,000
  empty nodes, each plan committed into the same `ClusterState` as a
  controller that keeps its index would: 50,000 placements. This is the
  headline `placements_per_s` (target >= 10,000/s; Nomad's C1M placed about
  3,750/s with 5 servers).
* **cold**: one new 5,000-replica job scheduled end to end with
  `schedule(job, nodes, allocations)` against those 50,000 existing
  allocations, building the usage index from the raw rows first.
* **update**: a new version of a 1,000-replica job with `max_parallel: 0`
  (every replica replaced in one plan: 1,000 stops + 1,000 placements).

Afterwards every node is checked for over-commit (a failed check raises).
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from domain.jobspec import normalize_job
from domain.scheduler import ClusterState, Node, schedule, schedule_on

NODES = 5_000
JOBS = 50
REPLICAS = 1_000
TARGET = ">= 10000"


def _metric(value: Any, unit: str = "", target: str | None = None) -> dict[str, Any]:
    if isinstance(value, float):
        value = round(value, 1)
    ok = None
    if target is not None:
        op, _, bound = target.partition(" ")
        ok = value >= float(bound) if op == ">=" else value <= float(bound)
    return {"value": value, "unit": unit, "target": target, "pass": ok}


def make_nodes(count: int, rng: random.Random) -> list[Node]:
    zones = ["a", "b", "c"]
    return [
        Node(
            id=f"node-{i:05d}",
            name=f"node-{i:05d}",
            address=f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}",
            cpu=rng.choice([8000, 16000, 32000]),
            memory=rng.choice([16384, 32768, 65536]),
            labels={
                "zone": zones[i % 3],
                "rack": f"r{i % 40}",
                "ssd": "true" if i % 4 else "false",
            },
            drivers=frozenset({"docker", "exec"}),
        )
        for i in range(count)
    ]


def make_job(n: int, count: int, rng: random.Random) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": f"job-{n:03d}",
        "image": "heroctl-test/busybox:latest",
        "count": count,
        "resources": {
            "cpu": rng.choice([100, 200, 250, 500]),
            "memory": rng.choice([128, 256, 512]),
        },
        "ports": [{"name": "http", "to": 8080}],
        "update": {"max_parallel": 0},
    }
    if n % 5 == 1:
        spec["constraints"] = [{"attribute": "node.label.zone", "operator": "!=", "value": "c"}]
    elif n % 5 == 2:
        spec["constraints"] = [{"attribute": "node.label.ssd", "operator": "=", "value": "true"}]
    job = normalize_job(spec)
    job["version"] = 0
    return job


def check_no_overcommit(state: ClusterState) -> None:
    for pos, node in enumerate(state.nodes):
        if state.used_cpu[pos] > node.cpu or state.used_mem[pos] > node.memory:
            raise AssertionError(f"{node.name} over-committed")


def run(quick: bool = False) -> dict[str, Any]:
    rng = random.Random(42)
    jobs_n = 10 if quick else JOBS
    nodes = make_nodes(NODES, rng)
    state = ClusterState(nodes, ())
    ids = iter(range(10**9))

    def new_id() -> str:
        return f"a{next(ids)}"

    # fill
    placed = failed = 0
    fill_s = 0.0
    jobs = [make_job(n, REPLICAS, rng) for n in range(jobs_n)]
    for job in jobs:
        t0 = time.perf_counter()
        plan = schedule_on(job, state, new_id=new_id, commit=True)
        fill_s += time.perf_counter() - t0
        placed += len(plan.places)
        failed += sum(f.count for f in plan.failures)
    check_no_overcommit(state)
    fill_rate = placed / fill_s

    # cold: build the index from raw rows, then one 5,000-replica job
    rows = [
        {
            "id": a.id,
            "job": a.job,
            "group": a.group,
            "node": a.node,
            "job_version": a.job_version,
            "index": a.index,
            "resources": {"cpu": a.cpu, "memory": a.memory},
            "ports": a.ports,
            "status": "running",
        }
        for a in state.allocs.values()
    ]
    big = make_job(999, 5_000, rng)
    t0 = time.perf_counter()
    cold_state = ClusterState(nodes, rows)
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    cold_plan = schedule_on(big, cold_state, new_id=new_id)
    cold_place_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    schedule(big, nodes, rows, new_id=new_id)
    cold_total_s = time.perf_counter() - t2

    # update: every replica of one job replaced in one plan
    updated = dict(jobs[0], version=1)
    t0 = time.perf_counter()
    up_plan = schedule_on(updated, state, new_id=new_id, commit=True)
    update_s = time.perf_counter() - t0
    check_no_overcommit(state)

    return {
        "placements_per_s": _metric(fill_rate, "placements/s", TARGET),
        "fill_placements": _metric(placed, "allocs"),
        "fill_failed": _metric(failed, "allocs", "<= 0"),
        "cold_index_build_ms": _metric(build_s * 1000, "ms"),
        "cold_placements_per_s": _metric(len(cold_plan.places) / cold_place_s, "placements/s"),
        "cold_end_to_end_ms": _metric(cold_total_s * 1000, "ms"),
        "update_ops_per_s": _metric((len(up_plan.places) + len(up_plan.stops)) / update_s, "ops/s"),
        "_details": {
            "nodes": NODES,
            "jobs": jobs_n,
            "replicas_per_job": REPLICAS,
            "existing_allocations_for_cold": len(rows),
            "cold_placed": len(cold_plan.places),
            "update_places": len(up_plan.places),
            "update_stops": len(up_plan.stops),
            "python": sys.version.split()[0],
        },
    }


if __name__ == "__main__":
    result = run(quick="--quick" in sys.argv)
    from bench.run import metric_table

    print(metric_table("scheduler", result))
    print(f"details: {result['_details']}")
