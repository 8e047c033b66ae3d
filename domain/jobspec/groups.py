"""One task group: count, update and restart policies, meta, its tasks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.jobspec.constraints import constraint_list
from domain.jobspec.errors import JobSpecError
from domain.jobspec.ingress import ingress_list
from domain.jobspec.tasks import normalize_task
from domain.jobspec.values import (
    as_int,
    as_list,
    as_object,
    dns_label,
    join_path,
    one_of,
    parse_duration,
    positive,
    string_map,
)

RESTART_MODES = ("fail", "delay")
MAX_COUNT = 100_000
DEFAULT_RESTART = {"attempts": 3, "interval": 300, "delay": 5, "mode": "fail"}
DEFAULT_UPDATE = {"max_parallel": 1, "min_healthy_time": 10, "healthy_deadline": 300}
# Keys that appear in a normalized `update` only when they differ from their
# default: jobs stored before they existed stay equal to their resubmits (a
# group that changed is a rolling update, raft.fsm_allocs.moves_in_place).
OPTIONAL_UPDATE = {
    "strategy": "rolling",
    "progress_deadline": 600,
    "auto_revert": False,
    "auto_promote": False,
    "stagger": 0,
}
DRAIN_TIMEOUT = 3600  # rainbow: how long old versions may keep connections (always stated)
STRATEGIES = ("rolling", "canary", "blue-green", "rainbow")
# Strategies that place new-version replicas beside the old ones and wait for a
# promote (domain.scheduler.reconcile): their `update` always holds `canary`.
# Rainbow runs a whole new set and promotes itself once it is healthy; the old
# versions keep their open connections (domain.ingress_routing).
CANARY_STRATEGIES = ("canary", "blue-green", "rainbow")
PROMOTED_BY_HAND = ("canary", "blue-green")  # the ones that take `canary` and `auto_promote`
UPDATE_KEYS = set(DEFAULT_UPDATE) | set(OPTIONAL_UPDATE) | {"canary", "drain_timeout"}
GROUP_KEYS = {"name", "count", "constraints", "update", "restart", "meta", "tasks", "ingress"}


def _restart(value: Any, path: str) -> dict[str, Any]:
    if value is None:  # the defaults are valid: no need to check them per submit
        return dict(DEFAULT_RESTART)
    doc = as_object(value, path, set(DEFAULT_RESTART), optional=True)
    mode = one_of(doc.get("mode", DEFAULT_RESTART["mode"]), RESTART_MODES, join_path(path, "mode"))
    interval_path = join_path(path, "interval")
    interval = positive(
        parse_duration(doc.get("interval", DEFAULT_RESTART["interval"]), interval_path),
        interval_path,
    )
    return {
        "attempts": as_int(
            doc.get("attempts", DEFAULT_RESTART["attempts"]),
            join_path(path, "attempts"),
            minimum=0,
            maximum=10_000,
        ),
        "interval": interval,
        "delay": parse_duration(
            doc.get("delay", DEFAULT_RESTART["delay"]), join_path(path, "delay")
        ),
        "mode": mode,
    }


def canary_settings(doc: Mapping[str, Any], strategy: str, count: int, path: str) -> dict[str, Any]:
    """``canary`` and ``auto_promote`` of an `update` block: a canary strategy
    always states its canary count (default 1; blue-green: the group's count),
    which must be 1 to ``count``; other strategies (rainbow too: it runs the
    group's whole count and promotes itself, domain.scheduler) take neither
    key (they would be ignored, so they are refused)."""
    auto_promote = doc.get("auto_promote", False)
    if not isinstance(auto_promote, bool):
        raise JobSpecError(join_path(path, "auto_promote"), "must be true or false")
    if strategy not in PROMOTED_BY_HAND:
        for key in ("canary", "auto_promote"):
            if key in doc:
                raise JobSpecError(
                    join_path(path, key),
                    f"only applies to the strategies {', '.join(PROMOTED_BY_HAND)}",
                )
        return {}
    default = count if strategy == "blue-green" else min(1, count)
    canary_path = join_path(path, "canary")
    canary = as_int(doc.get("canary", default), canary_path, minimum=0, maximum=MAX_COUNT)
    if canary < 1 and count > 0:  # a group scaled to 0 has nothing to try first
        raise JobSpecError(canary_path, f"must be at least 1 for the {strategy} strategy")
    if canary > count:
        raise JobSpecError(canary_path, f"must not be more than the group's count ({count})")
    settings: dict[str, Any] = {"canary": canary}
    if auto_promote:
        settings["auto_promote"] = True
    return settings


def _update(value: Any, path: str, count: int = 1) -> dict[str, Any]:
    if value is None:
        return dict(DEFAULT_UPDATE)
    doc = as_object(value, path, UPDATE_KEYS, optional=True)
    update = {
        "max_parallel": as_int(
            doc.get("max_parallel", DEFAULT_UPDATE["max_parallel"]),
            join_path(path, "max_parallel"),
            minimum=0,
            maximum=MAX_COUNT,
        ),
        "min_healthy_time": parse_duration(
            doc.get("min_healthy_time", DEFAULT_UPDATE["min_healthy_time"]),
            join_path(path, "min_healthy_time"),
        ),
        "healthy_deadline": parse_duration(
            doc.get("healthy_deadline", DEFAULT_UPDATE["healthy_deadline"]),
            join_path(path, "healthy_deadline"),
        ),
    }
    if update["healthy_deadline"] <= update["min_healthy_time"]:
        raise JobSpecError(
            join_path(path, "healthy_deadline"),
            f"must be longer than min_healthy_time ({update['min_healthy_time']}s)",
        )
    strategy = one_of(doc.get("strategy", "rolling"), STRATEGIES, join_path(path, "strategy"))
    if "progress_deadline" in doc:
        deadline_path = join_path(path, "progress_deadline")
        deadline = parse_duration(doc["progress_deadline"], deadline_path)
        if deadline <= update["healthy_deadline"]:
            raise JobSpecError(
                deadline_path,
                f"must be longer than healthy_deadline ({update['healthy_deadline']}s)",
            )
        update["progress_deadline"] = deadline
    auto_revert = doc.get("auto_revert", False)
    if not isinstance(auto_revert, bool):
        raise JobSpecError(join_path(path, "auto_revert"), "must be true or false")
    update.update(strategy=strategy, auto_revert=auto_revert)
    update.update(canary_settings(doc, strategy, count, path))
    if "stagger" in doc:
        update["stagger"] = parse_duration(doc["stagger"], join_path(path, "stagger"))
    drain_path = join_path(path, "drain_timeout")
    if strategy == "rainbow":
        update["drain_timeout"] = parse_duration(
            doc.get("drain_timeout", DRAIN_TIMEOUT), drain_path
        )
    elif "drain_timeout" in doc:
        raise JobSpecError(drain_path, "only applies to the rainbow strategy")
    for key, default in OPTIONAL_UPDATE.items():  # a default is said by its absence
        if update.get(key) == default:
            del update[key]
    return update


def update_settings(group: Mapping[str, Any]) -> dict[str, Any]:
    """A normalized group's `update` with every key present (the optional ones
    absent mean their default). Without a `progress_deadline`, a group whose
    `healthy_deadline` is not shorter than the default gets that deadline plus
    the default, so the rule progress > healthy holds for stored jobs too."""
    update = {**DEFAULT_UPDATE, **OPTIONAL_UPDATE, **(group.get("update") or {})}
    if "progress_deadline" not in (group.get("update") or {}):
        default = OPTIONAL_UPDATE["progress_deadline"]
        if update["healthy_deadline"] >= default:
            update["progress_deadline"] = update["healthy_deadline"] + default
    return update


def normalize_group(value: Any, path: str) -> dict[str, Any]:
    doc = as_object(value, path, GROUP_KEYS)
    name = dns_label(doc.get("name"), join_path(path, "name"))
    if "tasks" not in doc:
        raise JobSpecError(join_path(path, "tasks"), "is required: a group runs at least one task")
    raw_tasks = as_list(doc["tasks"], join_path(path, "tasks"))
    if not raw_tasks:
        raise JobSpecError(join_path(path, "tasks"), "must list at least one task")
    tasks = [
        normalize_task(t, join_path(join_path(path, "tasks"), i)) for i, t in enumerate(raw_tasks)
    ]
    seen_tasks: set[str] = set()
    seen_ports: set[str] = set()
    seen_static: set[int] = set()
    for i, task in enumerate(tasks):
        if task["name"] in seen_tasks:
            raise JobSpecError(f"{path}.tasks[{i}].name", f"duplicate task name {task['name']!r}")
        seen_tasks.add(task["name"])
        # Ports are allocated per group (one address per allocation), so
        # their names and static host ports must be unique across tasks.
        for j, port in enumerate(task["ports"]):
            if port["name"] in seen_ports:
                raise JobSpecError(
                    f"{path}.tasks[{i}].ports[{j}].name", f"duplicate port name {port['name']!r}"
                )
            seen_ports.add(port["name"])
            if port["static"] is not None:
                if port["static"] in seen_static:
                    raise JobSpecError(
                        f"{path}.tasks[{i}].ports[{j}].static",
                        f"static port {port['static']} is used twice",
                    )
                seen_static.add(port["static"])
    count = as_int(doc.get("count", 1), join_path(path, "count"), minimum=0, maximum=MAX_COUNT)
    group = {
        "name": name,
        "count": count,
        "constraints": constraint_list(doc.get("constraints"), join_path(path, "constraints")),
        "update": _update(doc.get("update"), join_path(path, "update"), count),
        "restart": _restart(doc.get("restart"), join_path(path, "restart")),
        "meta": string_map(doc.get("meta"), join_path(path, "meta")),
        "tasks": tasks,
    }
    ingress = ingress_list(doc.get("ingress"), join_path(path, "ingress"), seen_ports)
    if ingress:  # absent when empty: jobs without ingress keep their normalized form
        group["ingress"] = ingress
    return group


def group_resources(group: Mapping[str, Any]) -> tuple[int, int]:
    """(cpu MHz, memory MB) one allocation of a normalized group asks for."""
    cpu = sum(t["resources"]["cpu"] for t in group["tasks"])
    memory = sum(t["resources"]["memory"] for t in group["tasks"])
    return cpu, memory
