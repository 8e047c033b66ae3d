"""The whole job: the single-task shorthand expanded, server fields dropped,
every group normalized."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.jobspec.constraints import constraint_list
from domain.jobspec.errors import JobSpecError
from domain.jobspec.groups import normalize_group
from domain.jobspec.tasks import TASK_KEYS
from domain.jobspec.values import (
    as_int,
    as_list,
    as_mapping,
    dns_label,
    join_path,
    no_unknown_fields,
    one_of,
    string_map,
)

JOB_TYPES = ("service", "batch")
DEFAULT_PRIORITY = 50
JOB_KEYS = {"name", "type", "priority", "meta", "constraints", "groups"}
# Keys that, at the top level, make a job the single-task shorthand.
SHORTHAND_GROUP_KEYS = {"count", "update", "restart"}
SHORTHAND_TASK_KEYS = TASK_KEYS - {"name", "constraints"}

# Fields the server owns on a stored job (the FSM sets them), never part of a
# spec: a copy sent back by a client, or present because a stored job is
# re-normalized, is dropped, not rejected.
SERVER_OWNED_FIELDS = frozenset(
    {
        "id",
        "promoted_version",
        "version",
        "create_index",
        "modify_index",
        "job_modify_index",
        "submit_time",
        "status",
        "index",
        "stop",
        "stable",
    }
)


def _expand_shorthand(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level task/group fields -> one group and one task named after the job."""
    shorthand = [k for k in doc if k in SHORTHAND_TASK_KEYS or k in SHORTHAND_GROUP_KEYS]
    if not shorthand:
        return dict(doc)
    if "groups" in doc:
        raise JobSpecError(
            shorthand[0], "task fields at the top level cannot be combined with 'groups'"
        )
    name = doc.get("name")
    task = {k: doc[k] for k in doc if k in SHORTHAND_TASK_KEYS}
    group = {k: doc[k] for k in doc if k in SHORTHAND_GROUP_KEYS}
    task["name"] = name
    group["name"] = name
    group["tasks"] = [task]
    out = {k: v for k, v in doc.items() if k not in task and k not in group}
    out["name"] = name
    out["groups"] = [group]
    return out


def normalize_job(doc: Any) -> dict[str, Any]:
    """The canonical job from a submitted spec, or :class:`JobSpecError`.

    Server-owned fields (:data:`SERVER_OWNED_FIELDS`) are dropped; the FSM sets them.
    Errors in a shorthand job name the field as the user wrote it (``image``,
    not ``groups[0].tasks[0].image``).
    """
    raw = as_mapping(doc, "")
    raw = {k: v for k, v in raw.items() if k not in SERVER_OWNED_FIELDS}
    name = dns_label(raw.get("name"), "name")
    expanded = _expand_shorthand(raw)
    try:
        return _normalize_full(expanded, name)
    except JobSpecError as exc:
        if "groups" in raw:
            raise
        path = exc.path
        for prefix in ("groups[0].tasks[0].", "groups[0]."):
            if path.startswith(prefix):
                path = path[len(prefix) :]
                break
        raise JobSpecError(path, exc.message) from None


def _normalize_full(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    no_unknown_fields(raw, JOB_KEYS, "")
    kind = one_of(raw.get("type", "service"), JOB_TYPES, "type")
    # A job without groups (nor top-level task fields) is a stored definition
    # that runs nothing yet. It is stored with `groups: []`, so that list is
    # accepted too: what `GET /v1/jobs/:name` answers can be submitted again.
    raw_groups = as_list(raw["groups"], "groups") if "groups" in raw else []
    groups = [normalize_group(g, join_path("groups", i)) for i, g in enumerate(raw_groups)]
    seen: set[str] = set()
    for i, group in enumerate(groups):
        if group["name"] in seen:
            raise JobSpecError(f"groups[{i}].name", f"duplicate group name {group['name']!r}")
        seen.add(group["name"])
    return {
        "name": name,
        "type": kind,
        "priority": as_int(
            raw.get("priority", DEFAULT_PRIORITY), "priority", minimum=1, maximum=100
        ),
        "meta": string_map(raw.get("meta"), "meta"),
        "constraints": constraint_list(raw.get("constraints"), "constraints"),
        "groups": groups,
    }
