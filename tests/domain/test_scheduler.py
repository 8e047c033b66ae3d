"""The pure scheduler: placement, spread, constraints, failures, updates, drains."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from domain.jobspec import normalize_job
from domain.scheduler import (
    Allocation,
    ClusterState,
    Node,
    Plan,
    schedule,
    schedule_on,
    stop_job,
)


def make_job(version: int = 0, **spec: Any) -> dict[str, Any]:
    doc = {"name": "web", "image": "busybox", **spec}
    job = normalize_job(doc)
    job["version"] = version
    return job


def nodes(n: int, **kw: Any) -> list[Node]:
    base = {"cpu": 4000, "memory": 4096}
    base.update(kw)
    return [Node(id=f"n{i}", name=f"server-{i + 1}", **base) for i in range(n)]


class Ids:
    def __init__(self) -> None:
        self.counter = itertools.count()

    def __call__(self) -> str:
        return f"alloc-{next(self.counter)}"


UNIQUE = Ids()  # ids unique across every plan of a test


def run(job: dict[str, Any], ns: list[Node], allocs: list[Allocation] | None = None) -> Plan:
    return schedule(job, ns, allocs or [], new_id=UNIQUE, seed=7)


def applied(plan: Plan, allocs: list[Allocation], *, running: bool = True) -> list[Allocation]:
    """The allocation table after a committed plan (new ones running)."""
    stops = {s.alloc_id: s for s in plan.stops}
    out = []
    for a in allocs:
        stop = stops.get(a.id)
        if stop is not None:
            a = replace(a, desired="stop", status="lost" if stop.lost else "complete")
        out.append(a)
    for p in plan.places:
        new = p.to_allocation()
        out.append(replace(new, status="running") if running else new)
    return out


def live(allocs: list[Allocation]) -> list[Allocation]:
    return [a for a in allocs if a.live]


# --- placement ----------------------------------------------------------------


def test_three_replicas_spread_over_three_nodes() -> None:
    plan = run(make_job(count=3), nodes(3))
    assert len(plan.places) == 3 and not plan.failures and not plan.stops
    assert len({p.node_id for p in plan.places}) == 3
    assert sorted(p.index for p in plan.places) == [0, 1, 2]
    assert {p.name for p in plan.places} == {"web.web[0]", "web.web[1]", "web.web[2]"}
    assert all(p.cpu == 100 and p.memory == 128 and p.job_version == 0 for p in plan.places)


def test_more_replicas_than_nodes_stay_balanced() -> None:
    plan = run(make_job(count=10), nodes(4))
    per_node = Counter(p.node_id for p in plan.places)
    assert sorted(per_node.values()) == [2, 2, 3, 3]


def test_readable_failure_for_memory() -> None:
    plan = run(make_job(count=2, resources={"memory": 2048}), nodes(3, memory=1024))
    assert not plan.places
    assert [f.reason for f in plan.failures] == ["no node has 2048 MB free (3 nodes evaluated)"]
    assert plan.failures[0].count == 2 and plan.failures[0].group == "web"
    assert plan.failures[0].metrics["nodes_exhausted"] == {"memory": 3}


def test_readable_failure_for_cpu_and_partial_placement() -> None:
    plan = run(make_job(count=5, resources={"cpu": 1500}), nodes(2, cpu=3000))
    assert len(plan.places) == 4
    assert plan.failures[0].count == 1
    assert plan.failures[0].reason == "no node has 1500 MHz CPU free (2 nodes evaluated)"


def test_failure_mentions_filtered_nodes() -> None:
    ns = nodes(3, memory=1024)
    ns[2] = replace(ns[2], status="down")
    plan = run(make_job(resources={"memory": 2048}), ns)
    assert plan.failures[0].reason == (
        "no node has 2048 MB free (2 nodes evaluated; 1 filtered: 1 down)"
    )


def test_never_on_down_draining_or_ineligible_nodes() -> None:
    ns = nodes(4)
    ns[0] = replace(ns[0], status="down")
    ns[1] = replace(ns[1], drain=True)
    ns[2] = replace(ns[2], eligible=False)
    plan = run(make_job(count=3), ns)
    assert {p.node_id for p in plan.places} == {"n3"}
    plan = run(make_job(count=1), ns[:3])
    assert plan.failures[0].reason == "no node is feasible (1 down, 1 draining, 1 ineligible)"
    assert run(make_job(), []).failures[0].reason == "no nodes in the cluster"


def test_driver_must_be_present() -> None:
    ns = [replace(n, drivers=frozenset({"exec"})) for n in nodes(2)]
    plan = run(make_job(), ns)
    assert plan.failures[0].reason == "no node is feasible (2 missing driver docker)"
    exec_job = normalize_job({"name": "e", "driver": "exec", "command": ["sleep", "1"]})
    assert len(run(exec_job, ns).places) == 1


@pytest.mark.parametrize(
    ("constraint", "allowed"),
    [
        ({"attribute": "node.name", "operator": "!=", "value": "server-3"}, {"n0", "n1", "n3"}),
        ({"attribute": "node.name", "operator": "=", "value": "server-2"}, {"n1"}),
        ({"attribute": "node.label.zone", "operator": "=", "value": "a"}, {"n0", "n2"}),
        ({"attribute": "node.label.zone", "operator": "regexp", "value": "^b$"}, {"n1", "n3"}),
        ({"attribute": "node.label.tags", "operator": "set_contains", "value": "ssd,gpu"}, {"n0"}),
        (
            {"attribute": "node.label.tags", "operator": "set_contains_any", "value": "gpu,x"},
            {"n0", "n1"},
        ),
        ({"attribute": "node.label.tags", "operator": "is_set"}, {"n0", "n1", "n2"}),
        ({"attribute": "node.label.tags", "operator": "is_not_set"}, {"n3"}),
        ({"attribute": "node.attr.cores", "operator": ">=", "value": "8"}, {"n2", "n3"}),
        ({"attribute": "node.attr.cores", "operator": "<", "value": "8"}, {"n0", "n1"}),
        ({"attribute": "node.driver.exec", "operator": "is_set"}, {"n3"}),
        ({"attribute": "node.id", "operator": "!=", "value": "n0"}, {"n1", "n2", "n3"}),
    ],
)
def test_constraints(constraint: dict[str, str], allowed: set[str]) -> None:
    labels = [
        {"zone": "a", "tags": "ssd, gpu"},
        {"zone": "b", "tags": "gpu"},
        {"zone": "a", "tags": "ssd"},
        {"zone": "b"},
    ]
    cores = ["2", "4", "8", "16"]
    ns = [
        replace(
            n,
            labels=labels[i],
            attributes={"cores": cores[i]},
            drivers=frozenset({"docker", "exec"} if i == 3 else {"docker"}),
        )
        for i, n in enumerate(nodes(4))
    ]
    plan = run(make_job(count=8, constraints=[constraint]), ns)
    assert not plan.failures
    assert {p.node_id for p in plan.places} == allowed


def test_group_and_task_constraints_combine() -> None:
    job = make_job(count=4)
    job["groups"][0]["constraints"] = [
        {"attribute": "node.name", "operator": "!=", "value": "server-1"}
    ]
    job["groups"][0]["tasks"][0]["constraints"] = [
        {"attribute": "node.name", "operator": "!=", "value": "server-2"}
    ]
    plan = run(job, nodes(4))
    assert {p.node_id for p in plan.places} == {"n2", "n3"}


def test_constraint_failure_is_readable() -> None:
    job = make_job(constraints=[{"attribute": "node.name", "operator": "=", "value": "nope"}])
    plan = run(job, nodes(3))
    assert plan.failures[0].reason == "no node is feasible (3 by constraint node.name = nope)"


def test_distinct_hosts() -> None:
    job = make_job(count=4, constraints=[{"operator": "distinct_hosts"}])
    plan = run(job, nodes(3))
    assert len(plan.places) == 3 and len({p.node_id for p in plan.places}) == 3
    assert plan.failures[0].count == 1
    assert "distinct_hosts" in plan.failures[0].reason


def test_bin_packing_prefers_fuller_nodes() -> None:
    ns = nodes(10, cpu=10_000, memory=10_000)
    other = [
        Allocation(
            id=f"o{i}", job="other", group="g", node="n3", cpu=5000, memory=5000, status="running"
        )
        for i in range(1)
    ]
    plan = schedule(make_job(count=1), ns, other, new_id=Ids(), seed=1, limit=10)
    assert plan.places[0].node_id == "n3"


def test_existing_usage_is_respected() -> None:
    ns = nodes(2, cpu=1000, memory=1000)
    used = [
        Allocation(id="x", job="other", group="g", node="n0", cpu=900, memory=100, status="running")
    ]
    plan = run(make_job(count=2, resources={"cpu": 500, "memory": 100}), ns, used)
    assert [p.node_id for p in plan.places] == ["n1", "n1"]
    # a stopped or finished allocation holds nothing
    freed = [replace(used[0], desired="stop"), replace(used[0], id="y", status="complete")]
    plan = run(make_job(count=2, resources={"cpu": 500, "memory": 100}), ns, freed)
    assert sorted(p.node_id for p in plan.places) == ["n0", "n1"]


# --- ports ----------------------------------------------------------------------


def test_dynamic_ports_from_the_range_avoid_used_ports() -> None:
    ns = [
        replace(n, port_range=(30000, 30004), reserved_ports=frozenset({30000}))
        for n in nodes(1, cpu=100_000, memory=100_000)
    ]
    used = [
        Allocation(id="x", job="other", group="g", node="n0", ports={"p": 30001}, status="running")
    ]
    job = make_job(count=3, ports=[{"name": "http", "to": 80}])
    plan = run(job, ns, used)
    got = sorted(p.ports["http"] for p in plan.places)
    assert got == [30002, 30003, 30004]
    plan = run(make_job(count=4, ports=[{"name": "http"}]), ns, used)
    assert len(plan.places) == 3 and plan.failures[0].count == 1
    assert plan.failures[0].reason == "no dynamic port left on any feasible node (1 node evaluated)"


def test_two_dynamic_ports_differ() -> None:
    job = make_job(count=20, ports=[{"name": "a"}, {"name": "b"}])
    plan = run(job, nodes(2, cpu=100_000, memory=100_000))
    for p in plan.places:
        assert p.ports["a"] != p.ports["b"]
        assert 20000 <= p.ports["a"] <= 32000
    for node_id in ("n0", "n1"):
        on_node = [v for p in plan.places if p.node_id == node_id for v in p.ports.values()]
        assert len(on_node) == len(set(on_node))


def test_static_port_conflicts_move_replicas() -> None:
    ns = nodes(3)
    used = [
        Allocation(id="x", job="other", group="g", node="n0", ports={"p": 8080}, status="running")
    ]
    job = make_job(count=3, ports=[{"name": "http", "static": 8080}])
    plan = run(job, ns, used)
    assert sorted(p.node_id for p in plan.places) == ["n1", "n2"]
    assert all(p.ports == {"http": 8080} for p in plan.places)
    assert plan.failures[0].reason.startswith("static port 8080 is in use on every feasible node")


# --- reconciliation ---------------------------------------------------------------


def test_nothing_to_do_when_converged() -> None:
    ns = nodes(3)
    plan = run(make_job(count=3), ns)
    again = run(make_job(count=3), ns, applied(plan, []))
    assert again.empty and not again.failures


def test_scale_up_and_down_keep_spread_and_indexes() -> None:
    ns = nodes(3)
    allocs = applied(run(make_job(count=6), ns), [])
    plan = run(make_job(count=9), ns, allocs)
    assert not plan.stops
    assert sorted(p.index for p in plan.places) == [6, 7, 8]
    allocs = applied(plan, allocs)
    plan = run(make_job(count=4), ns, allocs)
    assert len(plan.stops) == 5 and not plan.places
    assert all(s.reason == "scaled down to 4" for s in plan.stops)
    allocs = applied(plan, allocs)
    per_node = Counter(a.node for a in live(allocs))
    assert sorted(per_node.values()) == [1, 1, 2]
    plan = run(make_job(count=0), ns, allocs)
    assert len(plan.stops) == 4


def test_lost_allocations_are_replaced_elsewhere() -> None:
    ns = nodes(3)
    allocs = applied(run(make_job(count=3), ns), [])
    dead = allocs[0].node
    ns = [replace(n, status="down") if n.id == dead else n for n in ns]
    plan = run(make_job(count=3), ns, allocs)
    assert [(s.alloc_id, s.lost) for s in plan.stops] == [(allocs[0].id, True)]
    assert plan.stops[0].reason == f"node {next(n.name for n in ns if n.id == dead)} is down"
    assert len(plan.places) == 1 and plan.places[0].node_id != dead
    assert plan.places[0].index == allocs[0].index and plan.places[0].reason == "lost"
    # an allocation on a node nobody knows any more is lost too
    plan = run(make_job(count=3), [n for n in ns if n.id != dead], allocs)
    assert plan.stops[0].lost and "is gone" in plan.stops[0].reason


def test_failed_allocations_are_replaced() -> None:
    ns = nodes(2)
    allocs = applied(run(make_job(count=2), ns), [])
    allocs[1] = replace(allocs[1], status="failed")
    plan = run(make_job(count=2), ns, allocs)
    assert not plan.stops and len(plan.places) == 1 and plan.places[0].index == allocs[1].index


def test_batch_complete_runs_are_not_repeated() -> None:
    ns = nodes(2)
    job = make_job(count=2, type="batch")
    allocs = applied(run(job, ns), [])
    allocs = [replace(allocs[0], status="complete"), allocs[1]]
    assert run(job, ns, allocs).empty
    allocs[1] = replace(allocs[1], status="failed")
    plan = run(job, ns, allocs)
    assert len(plan.places) == 1


def test_removed_group_and_stopped_job() -> None:
    ns = nodes(2)
    allocs = applied(run(make_job(count=2), ns), [])
    other = make_job(count=1)
    other["groups"][0]["name"] = "api"
    plan = run(other, ns, allocs)
    assert len(plan.stops) == 2 and all("group 'web' removed" in s.reason for s in plan.stops)
    assert len(plan.places) == 1 and plan.places[0].group == "api"
    stopped = dict(make_job(count=2), stop=True)
    plan = run(stopped, ns, allocs)
    assert len(plan.stops) == 2 and not plan.places
    deleted = stop_job("web", allocs + [Allocation(id="z", job="x", group="g", node="n0")])
    assert sorted(s.alloc_id for s in deleted.stops) == sorted(a.id for a in allocs)


def test_rolling_update_respects_max_parallel() -> None:
    ns = nodes(4)
    allocs = applied(run(make_job(count=4), ns), [])
    v1 = make_job(version=1, count=4, update={"max_parallel": 2})
    rounds = 0
    while True:
        plan = run(v1, ns, allocs)
        if plan.empty:
            break
        rounds += 1
        assert len(plan.places) <= 2 and len(plan.stops) == len(plan.places)
        assert {p.previous for p in plan.places} == {s.alloc_id for s in plan.stops}
        assert all(p.reason == "update" and p.job_version == 1 for p in plan.places)
        allocs = applied(plan, allocs)
        # not healthy yet: nothing more moves
        assert run(v1, ns, allocs).empty or rounds > 10
        assert run(v1, ns, allocs).deferred.get("web", 0) == 4 - 2 * rounds
        allocs = [replace(a, healthy=True) if a.job_version == 1 else a for a in allocs]
        assert rounds <= 3
    assert rounds == 2
    current = live(allocs)
    assert len(current) == 4 and all(a.job_version == 1 for a in current)
    assert sorted(a.index for a in current) == [0, 1, 2, 3]


def test_rolling_update_all_at_once_with_max_parallel_zero() -> None:
    ns = nodes(3)
    allocs = applied(run(make_job(count=3), ns), [])
    plan = run(make_job(version=1, count=3, update={"max_parallel": 0}), ns, allocs)
    assert len(plan.places) == 3 and len(plan.stops) == 3


def test_unhealthy_replacement_halts_the_update() -> None:
    ns = nodes(3)
    allocs = applied(run(make_job(count=3), ns), [])
    v1 = make_job(version=1, count=3)
    allocs = applied(run(v1, ns, allocs), allocs)
    allocs = [replace(a, healthy=False) if a.job_version == 1 else a for a in allocs]
    plan = run(v1, ns, allocs)
    assert plan.empty and "unhealthy" in plan.halted["web"]
    assert plan.deferred == {"web": 2}
    # a new version gets going again
    v2 = make_job(version=2, count=3)
    assert len(run(v2, ns, allocs).places) == 1


def test_update_with_scale_up_places_new_ones_at_once() -> None:
    ns = nodes(5)
    allocs = applied(run(make_job(count=2), ns), [])
    plan = run(make_job(version=1, count=5), ns, allocs)
    reasons = Counter(p.reason for p in plan.places)
    assert reasons == {"new": 3, "update": 1}


def test_drain_places_replacement_before_stopping() -> None:
    ns = nodes(3)
    allocs = applied(run(make_job(count=2), ns), [])
    drained = allocs[0].node
    ns = [replace(n, drain=True) if n.id == drained else n for n in ns]
    plan = run(make_job(count=2), ns, allocs)
    assert not plan.stops
    assert len(plan.places) == 1
    new = plan.places[0]
    assert new.previous == allocs[0].id and new.reason == "migrate" and new.node_id != drained
    allocs = applied(plan, allocs)
    # replacement not healthy yet: the old one keeps running, nothing else moves
    assert run(make_job(count=2), ns, allocs).empty
    allocs = [replace(a, healthy=True) if a.id == new.alloc_id else a for a in allocs]
    plan = run(make_job(count=2), ns, allocs)
    assert [s.alloc_id for s in plan.stops] == [allocs[0].id] and not plan.places
    assert plan.stops[0].reason.startswith(f"replaced by {new.alloc_id}")
    allocs = applied(plan, allocs)
    assert all(a.node != drained for a in live(allocs))
    assert run(make_job(count=2), ns, allocs).empty


def test_scale_down_during_drain_prefers_draining_node() -> None:
    ns = nodes(3)
    allocs = applied(run(make_job(count=3), ns), [])
    drained = allocs[1].node
    ns = [replace(n, drain=True) if n.id == drained else n for n in ns]
    plan = run(make_job(count=2), ns, allocs)
    assert [s.alloc_id for s in plan.stops] == [allocs[1].id] and not plan.places


def test_deterministic_and_state_untouched() -> None:
    ns = nodes(50)
    job = make_job(count=30, ports=[{"name": "http"}])
    first = schedule(job, ns, [], new_id=Ids(), seed=7).to_dict()
    assert schedule(job, ns, [], new_id=Ids(), seed=7).to_dict() == first
    state = ClusterState(ns, [])
    schedule_on(job, state, new_id=Ids(), seed=7)
    assert sum(state.used_cpu) == 0 and not state.allocs
    schedule_on(job, state, new_id=Ids(), seed=7, commit=True)
    assert sum(state.used_cpu) == 30 * 100 and len(state.allocs) == 30


def test_from_dict_rows() -> None:
    node = Node.from_dict(
        {
            "id": "abc",
            "name": "server-1",
            "resources": {"cpu": 2000, "memory": 1024},
            "eligibility": "ineligible",
            "drivers": ["docker"],
            "labels": {"zone": "a"},
        }
    )
    assert (node.cpu, node.memory, node.eligible, node.drivers) == (
        2000, 1024, False, frozenset({"docker"}))  # fmt: skip
    alloc = Allocation.from_dict(
        {
            "id": "a1",
            "job": "web",
            "group": "web",
            "node_id": "abc",
            "version": 3,
            "resources": {"cpu": 100, "memory": 64},
            "ports": [{"name": "http", "host": 20001, "to": 80}],
            "client_status": "running",
            "desired_status": "run",
            "previous_alloc": "a0",
        }
    )
    assert (alloc.node, alloc.job_version, alloc.cpu, alloc.ports, alloc.live, alloc.previous) == (
        "abc", 3, 100, {"http": 20001}, True, "a0")  # fmt: skip
    plan = run(make_job(), [node], [alloc])
    assert plan.to_dict()["failures"][0]["reason"] == "no node is feasible (1 ineligible)"


# --- properties -----------------------------------------------------------------------


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[Node], list[Allocation]]:
    n = draw(st.integers(1, 12))
    ns = []
    for i in range(n):
        ns.append(
            Node(
                id=f"n{i}",
                name=f"node-{i}",
                cpu=draw(st.integers(500, 8000)),
                memory=draw(st.integers(256, 8192)),
                status=draw(st.sampled_from(["ready"] * 6 + ["down", "draining"])),
                eligible=draw(st.booleans()) or draw(st.booleans()),
                labels={"zone": draw(st.sampled_from("abc"))},
            )
        )
    allocs = []
    for k in range(draw(st.integers(0, 20))):
        node = draw(st.sampled_from(ns))
        allocs.append(
            Allocation(
                id=f"other-{k}",
                job="other",
                group="g",
                node=node.id,
                cpu=draw(st.integers(0, 1000)),
                memory=draw(st.integers(0, 1000)),
                status="running",
            )
        )
    return ns, allocs


def fits_initially(state: ClusterState, pos: int, cpu: int, memory: int) -> bool:
    node = state.nodes[pos]
    return state.used_cpu[pos] + cpu <= node.cpu and state.used_mem[pos] + memory <= node.memory


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    clusters(),
    st.integers(0, 20),
    st.integers(1, 3000),
    st.integers(10, 3000),
    st.sampled_from([None, "a", "b"]),
    st.integers(1, 6),
)
def test_property_placement(
    cluster: tuple[list[Node], list[Allocation]],
    count: int,
    cpu: int,
    memory: int,
    zone: str | None,
    limit: int,
) -> None:
    ns, allocs = cluster
    spec: dict[str, Any] = {"count": count, "resources": {"cpu": cpu, "memory": memory}}
    if zone:
        spec["constraints"] = [{"attribute": "node.label.zone", "operator": "=", "value": zone}]
    job = make_job(**spec)
    before = ClusterState(ns, allocs)
    plan = schedule(job, ns, allocs, new_id=Ids(), seed=count, limit=limit)

    # every replica is either placed or reported, with a readable reason
    assert len(plan.places) + sum(f.count for f in plan.failures) == count
    for failure in plan.failures:
        assert failure.reason.startswith("no ") or "port" in failure.reason
        assert (
            "evaluated" in failure.reason
            or "feasible" in failure.reason
            or "nodes" in failure.reason
        )

    after = ClusterState(ns, [*allocs, *(p.to_allocation() for p in plan.places)])
    for pos, node in enumerate(ns):
        placed_here = [p for p in plan.places if p.node_id == node.id]
        if placed_here:
            # never over-commit; only feasible nodes
            assert after.used_cpu[pos] <= node.cpu and after.used_mem[pos] <= node.memory
            assert node.schedulable
            assert zone is None or node.labels["zone"] == zone

    # spread: with enough feasible nodes that each fit one replica, one per node
    feasible_fit = [
        pos
        for pos, node in enumerate(ns)
        if node.schedulable
        and (zone is None or node.labels["zone"] == zone)
        and fits_initially(before, pos, cpu, memory)
    ]
    if count <= len(feasible_fit):
        assert not plan.failures
        assert len({p.node_id for p in plan.places}) == len(plan.places)
    if not feasible_fit:
        assert not plan.places


@settings(max_examples=150, deadline=None)
@given(clusters(), st.integers(1, 12), st.integers(0, 12), st.integers(0, 3))
def test_property_scale_and_update_converge(
    cluster: tuple[list[Node], list[Allocation]], first: int, second: int, max_parallel: int
) -> None:
    ns, others = cluster
    assume(any(n.schedulable for n in ns))
    job0 = make_job(count=first, resources={"cpu": 10, "memory": 10})
    allocs = applied(run(job0, ns, others), others)
    job1 = make_job(
        version=1, count=second, resources={"cpu": 10, "memory": 10},
        update={"max_parallel": max_parallel},
    )  # fmt: skip
    for _ in range(40):
        plan = run(job1, ns, allocs)
        if max_parallel:
            in_flight = [
                a for a in live(allocs) if a.job == "web" and a.previous and a.healthy is not True
            ]
            assert (
                len([p for p in plan.places if p.reason == "update"])
                <= max_parallel - len(in_flight)
                or not in_flight
            )
        if plan.empty:
            break
        allocs = applied(plan, allocs)
        allocs = [replace(a, healthy=True) if a.job == "web" and a.live else a for a in allocs]
    assert plan.empty
    mine = [a for a in live(allocs) if a.job == "web"]
    # converged: the new version everywhere, and what is missing is explained
    assert len(mine) + sum(f.count for f in plan.failures) == second
    assert all(a.job_version == 1 for a in mine)
    assert len({a.index for a in mine}) == len(mine)
    state = ClusterState(ns, allocs)
    for pos, node in enumerate(ns):
        if any(a.node == node.id for a in mine):
            assert state.used_cpu[pos] <= node.cpu and state.used_mem[pos] <= node.memory


@settings(max_examples=100, deadline=None)
@given(
    st.integers(2, 10),
    st.integers(1, 15),
    st.integers(0, 3),
    st.data(),
)
def test_property_drain_never_drops_healthy_replicas(
    n: int, count: int, max_parallel: int, data: st.DataObject
) -> None:
    ns = nodes(n, cpu=100_000, memory=100_000)
    job = make_job(count=count, update={"max_parallel": max_parallel})
    allocs = [replace(a, healthy=True) for a in applied(run(job, ns), [])]
    drained = set(data.draw(st.lists(st.sampled_from([x.id for x in ns]), min_size=1,
                                     max_size=n - 1, unique=True)))  # fmt: skip
    ns = [replace(x, drain=True) if x.id in drained else x for x in ns]
    for _ in range(100):
        plan = run(job, ns, allocs)
        if plan.empty:
            break
        assert all(s.reason.startswith("replaced by") for s in plan.stops)
        assert all(p.node_id not in drained and p.reason == "migrate" for p in plan.places)
        if max_parallel:
            in_flight = [a for a in live(allocs) if a.previous and a.healthy is not True]
            assert len(plan.places) + len(in_flight) <= max_parallel
        allocs = applied(plan, allocs)
        healthy = [a for a in live(allocs) if a.healthy is True]
        assert len(healthy) >= count  # the old ones run until their replacement is healthy
        allocs = [replace(a, healthy=True) if a.live else a for a in allocs]
    assert plan.empty
    final = live(allocs)
    assert len(final) == count and all(a.node not in drained for a in final)


def test_cluster_state_follows_node_changes() -> None:
    ns = nodes(2)
    early = Allocation(id="e", job="other", group="g", node="n9", cpu=3900, status="running")
    state = ClusterState(ns, [early])
    job = make_job(count=1, resources={"cpu": 500})
    state.update_node(Node(id="n9", name="late", cpu=4000, memory=4096))
    assert state.used_cpu[state.node_pos["n9"]] == 3900  # its allocation counts
    state.update_node(replace(ns[0], status="down"))
    state.update_node(replace(ns[1], eligible=False))
    plan = schedule_on(job, state, new_id=Ids(), seed=1)
    assert plan.failures and "no node has 500 MHz CPU free" in plan.failures[0].reason
    state.update_node(replace(ns[1], eligible=True, cpu=8000))
    plan = schedule_on(job, state, new_id=Ids(), seed=1)
    assert [p.node_id for p in plan.places] == ["n1"]
