"""Which allocations a route sends requests to, per update strategy, and
when a stopped allocation's drain is over."""

from __future__ import annotations

from typing import Any

from domain.ingress_routing import draining_now, ingress_released, routed, serving


def alloc(alloc_id: str, version: int, *, check_ok: bool | None = True, **fields: Any) -> dict:
    doc = {
        "id": alloc_id,
        "group": "app",
        "job_version": version,
        "status": "running",
        "desired_status": "run",
        "group_spec": {"tasks": [{"name": "web", "check": {"type": "http"}}]},
        "task_states": {"web": {"check_ok": check_ok}},
    }
    return {**doc, **fields}


def job(strategy: str, version: int, promoted: int | None = None) -> dict:
    doc: dict[str, Any] = {
        "version": version,
        "groups": [{"name": "app", "update": {"strategy": strategy}}],
    }
    if promoted is not None:
        doc["promoted_version"] = promoted
    return doc


OLD = [alloc("o1", 1), alloc("o2", 1)]
NEW = [alloc("n1", 2), alloc("n2", 2)]


def test_serving_needs_running_desired_run_and_a_passing_check() -> None:
    assert serving(alloc("a", 1))
    assert not serving(alloc("a", 1, check_ok=None))
    assert not serving(alloc("a", 1, status="pending"))
    assert not serving(alloc("a", 1, desired_status="stop"))
    no_check = alloc("a", 1, check_ok=None, group_spec={"tasks": [{"name": "web"}]})
    assert serving(no_check)


def test_rolling_and_canary_route_to_every_serving_version() -> None:
    for strategy in ("rolling", "canary"):
        assert routed(job(strategy, 2), "app", OLD + NEW) == {"o1", "o2", "n1", "n2"}
    assert routed(job("rolling", 2), "app", [alloc("x", 2, check_ok=False)]) == set()
    assert routed(job("rolling", 2), "other", OLD) == set()


def test_blue_green_routes_to_the_old_set_until_promoted_then_the_new_only() -> None:
    assert routed(job("blue-green", 2), "app", OLD + NEW) == {"o1", "o2"}
    assert routed(job("blue-green", 2, promoted=2), "app", OLD + NEW) == {"n1", "n2"}
    # a first version has no old set: it serves
    assert routed(job("blue-green", 2), "app", NEW) == {"n1", "n2"}


def test_rainbow_routes_new_requests_to_the_newest_serving_version() -> None:
    assert routed(job("rainbow", 2), "app", OLD + NEW) == {"n1", "n2"}
    unready = [alloc("n1", 2, check_ok=False)]
    assert routed(job("rainbow", 2), "app", OLD + unready) == {"o1", "o2"}


def test_a_drain_ends_once_every_ingress_node_applied_a_model_past_the_stop() -> None:
    stopped = alloc("o1", 1, desired_status="stop", ingress_drain_index=40)
    assert draining_now(stopped)
    assert not draining_now({**stopped, "status": "complete"})
    assert not draining_now(alloc("o1", 1, desired_status="stop"))  # stopped before it ran
    assert not ingress_released(stopped, {"n1": 40, "n2": 39}, ["n1", "n2"])
    assert ingress_released(stopped, {"n1": 40, "n2": 41}, ["n1", "n2"])
    assert ingress_released(stopped, {"n1": 40}, ["n1"])  # n2 serves no ingress
    assert ingress_released(alloc("o2", 1), {}, ["n1"])  # no drain index: nothing to wait for
