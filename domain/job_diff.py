"""The difference between two versions of a job, in a shape people can read.

Loosely Nomad's plan diff: the job, each of its groups and each of their
tasks is ``added``, ``deleted``, ``edited`` or ``none``, with the fields that
changed. Fields are flattened to paths (``resources.memory``, ``env.VERSION``,
``ports[http].to``, ``constraints[0].value``) so one line says one change:
nested objects become dotted paths, a list of objects is keyed by each
item's ``name`` when every item has a distinct one (else by position), and a
list of plain values (``command``) stays one value. Absent, ``None`` and
empty values are the same thing: no field.

Pure: both sides are normalized jobs (:func:`domain.jobspec.normalize_job`)
or stored documents, whose server-owned fields (version, indexes, ...) are
not part of the spec and never show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from domain.jobspec import SERVER_OWNED_FIELDS

__all__ = ["ADDED", "DELETED", "EDITED", "NONE", "job_diff", "flatten"]

ADDED = "added"
DELETED = "deleted"
EDITED = "edited"
NONE = "none"

_JOB_SKIP = SERVER_OWNED_FIELDS | {"name", "groups"}  # the name heads the diff
_GROUP_SKIP = frozenset({"name", "tasks"})
_TASK_SKIP = frozenset({"name"})


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """``{path: value}`` for every leaf of ``value`` (see the module docstring)."""
    out: dict[str, Any] = {}
    if value is None or (isinstance(value, Mapping | list | tuple) and not value):
        return out
    if isinstance(value, Mapping):
        for key in sorted(value, key=str):
            out.update(flatten(value[key], f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(value, list | tuple):
        if not all(isinstance(v, Mapping) for v in value):
            out[path] = list(value)
            return out
        names = [v.get("name") for v in value]
        keyed = all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
        for i, item in enumerate(value):
            key = names[i] if keyed else i
            rest = {k: v for k, v in item.items() if k != "name"} if keyed else item
            out.update(flatten(rest, f"{path}[{key}]"))
            if keyed and not flatten(rest):
                out[f"{path}[{key}]"] = key  # a named item with nothing else
        return out
    out[path] = value
    return out


def _field_diffs(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The changed leaves between two flattened documents, by path."""
    out: list[dict[str, Any]] = []
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            out.append({"name": name, "type": DELETED, "old": old[name], "new": None})
        elif name not in old:
            out.append({"name": name, "type": ADDED, "old": None, "new": new[name]})
        elif old[name] != new[name]:
            out.append({"name": name, "type": EDITED, "old": old[name], "new": new[name]})
    return out


def _own_fields(doc: Mapping[str, Any] | None, skip: Iterable[str]) -> dict[str, Any]:
    if doc is None:
        return {}
    leave = set(skip)
    return flatten({k: v for k, v in doc.items() if k not in leave})


def _kind(old: Any, new: Any, changed: bool) -> str:
    if old is None:
        return ADDED
    if new is None:
        return DELETED
    return EDITED if changed else NONE


def _by_name(items: Iterable[Mapping[str, Any]] | None) -> dict[str, Mapping[str, Any]]:
    return {str(i.get("name")): i for i in items or ()}


def _names_in_order(
    old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """The new document's order, then what only the old one had."""
    return [*new, *(n for n in old if n not in new)]


def _task_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any]:
    fields = _field_diffs(_own_fields(old, _TASK_SKIP), _own_fields(new, _TASK_SKIP))
    name = (new or old or {}).get("name")
    return {"name": name, "type": _kind(old, new, bool(fields)), "fields": fields}


def _group_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any]:
    fields = _field_diffs(_own_fields(old, _GROUP_SKIP), _own_fields(new, _GROUP_SKIP))
    old_tasks = _by_name((old or {}).get("tasks"))
    new_tasks = _by_name((new or {}).get("tasks"))
    tasks = [
        _task_diff(old_tasks.get(n), new_tasks.get(n))
        for n in _names_in_order(old_tasks, new_tasks)
    ]
    changed = bool(fields) or any(t["type"] != NONE for t in tasks)
    name = (new or old or {}).get("name")
    return {"name": name, "type": _kind(old, new, changed), "fields": fields, "tasks": tasks}


def job_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{"name", "type", "fields": [...], "groups": [{"name", "type", "fields",
    "tasks": [{"name", "type", "fields"}]}]}``; each field is ``{"name",
    "type", "old", "new"}``. ``old`` None: the job is new; ``new`` None: it goes."""
    fields = _field_diffs(_own_fields(old, _JOB_SKIP), _own_fields(new, _JOB_SKIP))
    old_groups = _by_name((old or {}).get("groups"))
    new_groups = _by_name((new or {}).get("groups"))
    groups = [
        _group_diff(old_groups.get(n), new_groups.get(n))
        for n in _names_in_order(old_groups, new_groups)
    ]
    changed = bool(fields) or any(g["type"] != NONE for g in groups)
    name = (new or old or {}).get("name")
    return {"name": name, "type": _kind(old, new, changed), "fields": fields, "groups": groups}
