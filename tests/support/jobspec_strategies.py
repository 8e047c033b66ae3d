"""Hypothesis strategies for job documents, drawn from the job spec's JSON
Schema itself (domain/jobspec/schema.py), and `repair`, which makes a drawn
document keep the rules the schema cannot say (its `x-rules`: unique names,
a check's port names a port, deadlines grow, ...).

The strategies walk the schema's own vocabulary (type, enum, const, pattern,
bounds, items, properties, required, additionalProperties, propertyNames,
anyOf, allOf, not, $ref, and if/then/else, whose branches are applied to a
drawn object by dropping what a branch forbids and drawing what it requires);
every value is finally checked against its subschema with jsonschema, so a
strategy never yields what the schema refuses.
"""

from __future__ import annotations

import copy
import posixpath
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from domain.jobspec.schema import shorthand_keys
from domain.jobspec.values import parse_duration

Schema = Mapping[str, Any]
MAX_LIST = 3
ANY: Schema = {}  # one object: validators and strategies are cached by id


class SchemaStrategies:
    """``strategy(subschema)`` for any subschema of ``root``."""

    def __init__(self, root: Schema) -> None:
        self.root = root
        self._validators: dict[int, Draft202012Validator] = {}
        self._strategies: dict[tuple[int, frozenset[str] | None], st.SearchStrategy[Any]] = {}

    def valid(self, schema: Schema, value: Any) -> bool:
        key = id(schema)
        if key not in self._validators:
            full = {**schema, "$defs": self.root["$defs"]} if isinstance(schema, dict) else schema
            self._validators[key] = Draft202012Validator(full)
        return self._validators[key].is_valid(value)

    def resolve(self, schema: Schema) -> Schema:
        while "$ref" in schema:
            node: Any = self.root
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def strategy(self, schema: Schema, only: set[str] | None = None) -> st.SearchStrategy[Any]:
        """Values ``schema`` accepts (``only``: an object draws no other optional key)."""
        schema = self.resolve(schema)
        key = (id(schema), None if only is None else frozenset(only))
        if key not in self._strategies:
            raw = st.deferred(lambda: self._raw(schema, only))
            self._strategies[key] = raw.filter(lambda v: self.valid(schema, v))
        return self._strategies[key]

    def _raw(self, schema: Schema, only: set[str] | None) -> st.SearchStrategy[Any]:
        kind = schema.get("x-type", "")
        if kind.startswith("duration"):
            return durations(positive=kind.endswith("> 0"))
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if "anyOf" in schema:
            return st.one_of([self.strategy(b) for b in schema["anyOf"]])
        kinds = schema.get("type")
        if kinds is None:
            return json_values()
        kinds = kinds if isinstance(kinds, list) else [kinds]
        return st.one_of([self._typed(t, schema, only) for t in kinds])

    def _typed(self, kind: str, schema: Schema, only: set[str] | None) -> st.SearchStrategy[Any]:
        if kind == "null":
            return st.none()
        if kind == "boolean":
            return st.booleans()
        if kind == "integer":
            return st.integers(schema.get("minimum"), schema.get("maximum"))
        if kind == "number":
            lo, hi = schema.get("minimum"), schema.get("maximum")
            return st.one_of(
                st.integers(None if lo is None else int(lo + 0.999), None if hi is None else hi),
                st.floats(lo, hi, allow_nan=False, allow_infinity=False),
            )
        if kind == "string":
            if "pattern" in schema:
                return st.from_regex(schema["pattern"], fullmatch=True)
            return st.text(min_size=schema.get("minLength", 0), max_size=12)
        if kind == "array":
            items = self.strategy(schema.get("items", {}))
            low = schema.get("minItems", 0)
            return st.lists(items, min_size=low, max_size=min(schema.get("maxItems", 9), MAX_LIST))
        return self._object(schema, only)

    def _object(self, schema: Schema, only: set[str] | None) -> st.SearchStrategy[Any]:
        props: Mapping[str, Schema] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        if not props and isinstance(extra, Mapping):
            names = schema.get("propertyNames", ANY)
            keys = st.from_regex(names["pattern"], fullmatch=True) if names else st.text()
            keys = keys.filter(lambda k: self.valid(names, k))
            return st.dictionaries(keys, self.strategy(extra), max_size=MAX_LIST)
        required = set(schema.get("required", []))
        allowed = [k for k in props if only is None or k in only or k in required]

        @st.composite
        def draw_object(draw: Callable[..., Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key in allowed:
                if key in required or draw(st.booleans()):
                    out[key] = draw(self.strategy(props[key]))
            self._apply_conditions(draw, schema, props, out)
            return out

        return draw_object()

    def _apply_conditions(
        self, draw: Callable[..., Any], schema: Schema, props: Mapping[str, Schema], out: dict
    ) -> None:
        """Make ``out`` keep ``schema``'s if/then/else (and those it refers to)."""
        schema = self.resolve(schema)
        if "if" in schema:
            branch = schema.get("then" if self.valid(schema["if"], out) else "else")
            if branch is not None:
                self._apply_branch(draw, branch, props, out)
        for part in schema.get("allOf", []):
            self._apply_conditions(draw, part, props, out)

    def _apply_branch(
        self, draw: Callable[..., Any], branch: Schema, props: Mapping[str, Schema], out: dict
    ) -> None:
        wanted = branch.get("properties", {})
        required = set(branch.get("required", []))
        for key, rule in wanted.items():
            if key in out and not self.valid(rule, out[key]):
                del out[key]
        for key in required:
            if key not in out:
                rule = wanted.get(key, ANY)
                out[key] = draw(
                    self.strategy(props[key]).filter(lambda v, r=rule: self.valid(r, v))
                )
        self._apply_conditions(draw, branch, props, out)


def durations(positive: bool) -> st.SearchStrategy[Any]:
    """Durations within the validator's range: seconds as numbers, and texts
    in the duration grammar (any case, surrounding spaces, several parts)."""
    low = 0.001 if positive else 0
    numbers = st.one_of(
        st.integers(1 if positive else 0, 10**6),
        st.floats(low, 10**6, allow_nan=False)
        .map(lambda x: round(x, 3))
        .filter(lambda x: x >= low),
    )
    unit = st.sampled_from(["ms", "s", "m", "h", "d", "w", "MS", "S", "M", "H"])
    part = st.tuples(st.integers(1 if positive else 0, 99), unit).map(lambda p: f"{p[0]}{p[1]}")
    texts = st.tuples(st.lists(part, min_size=1, max_size=3), st.sampled_from(["", " "])).map(
        lambda t: f"{t[1]}{''.join(t[0])}{t[1]}"
    )
    bare = st.integers(1 if positive else 0, 10**6).map(str)
    return st.one_of(numbers, texts, bare)


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value, small."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-10, 10**6),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=6,
    )


# --- the rules the schema cannot say -----------------------------------------------


def repair(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of a schema-valid ``doc`` that also keeps the schema's ``x-rules``."""
    doc = copy.deepcopy(doc)
    if isinstance(doc.get("groups"), list):
        _unique_names(doc["groups"])
        for group in doc["groups"]:
            _repair_group(group)
    elif any(k in doc for k in shorthand_keys()):
        _repair_group({"tasks": [doc], "update": doc.get("update"), "count": doc.get("count", 1)})
    for constraint in _constraints(doc):
        _repair_constraint(constraint)
    return doc


def _constraints(doc: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(doc.get("constraints") or [])
    for group in doc.get("groups") or []:
        found += group.get("constraints") or []
        for task in group.get("tasks") or []:
            found += task.get("constraints") or []
    return found


def _unique_names(items: list[dict[str, Any]], taken: set[str] | None = None) -> None:
    """Rename the items whose ``name`` was seen before (or is in ``taken``)."""
    seen = set() if taken is None else taken
    for i, item in enumerate(items):
        name = item["name"]
        while name in seen:
            name = f"{item['name'][:50].rstrip('-_')}-{i}x{len(seen)}"
        item["name"] = name
        seen.add(name)


def _repair_group(group: dict[str, Any]) -> None:
    tasks = group["tasks"]
    if "name" in tasks[0]:
        _unique_names(tasks)
    for task in tasks:
        _repair_task(task)
    ports = [p for t in tasks for p in t.get("ports") or []]
    _unique_names(ports)
    names = {p["name"] for p in ports}
    static: set[int] = set()
    for port in ports:
        if port.get("static") in static:
            port["static"] = None
        elif port.get("static") is not None:
            static.add(port["static"])
    for i, task in enumerate(tasks):
        check = task.get("check")
        own = [p["name"] for p in task.get("ports") or []]
        if check and check["type"] in ("http", "tcp") and check["port"] not in own:
            if not own:
                fresh = f"check-{i}"
                task["ports"] = [{"name": fresh}]
                names.add(fresh)
                own = [fresh]
            check["port"] = own[0]
    _repair_update(group.get("update"), group.get("count", 1))
    routes = group.get("ingress") or []
    if routes:
        if not names:
            tasks[0]["ports"] = [{"name": "ingress"}]
            names = {"ingress"}
        seen: set[tuple[str, str]] = set()
        kept = []
        for route in routes:
            if route["port"] not in names:
                route["port"] = sorted(names)[0]
            where = (route["host"].lower(), (route.get("path") or "/").rstrip("/") or "/")
            if where not in seen:
                seen.add(where)
                kept.append(route)
        group["ingress"] = kept


def _repair_task(task: dict[str, Any]) -> None:
    for holder in (task, task.get("check") or {}):
        command = holder.get("command")
        if isinstance(command, str):
            try:
                shlex.split(command)
            except ValueError:
                holder["command"] = "true"
    env, secrets = task.get("env") or {}, task.get("secrets") or {}
    for key in secrets:
        env.pop(key, None)
    if task.get("volumes"):
        mounts, targets = [], set()
        for volume in task["volumes"]:
            target = posixpath.normpath(volume["target"]).replace("//", "/")
            if target not in targets:
                targets.add(target)
                mounts.append(volume)
        task["volumes"] = mounts


def _repair_update(update: Any, count: int) -> None:
    if not isinstance(update, dict):
        return
    healthy = parse_duration(update.get("healthy_deadline", 300))
    if healthy <= parse_duration(update.get("min_healthy_time", 10)):
        update["min_healthy_time"] = 0
        if healthy <= 0:
            update["healthy_deadline"] = healthy = 1
    if "progress_deadline" in update and parse_duration(update["progress_deadline"]) <= healthy:
        del update["progress_deadline"]
    if "canary" in update:
        update["canary"] = max(min(update["canary"], count), min(1, count))


def _repair_constraint(constraint: dict[str, Any]) -> None:
    operator = str(constraint.get("operator", "=")).strip().lower()
    if operator == "regexp":
        try:
            re.compile(str(constraint.get("value")))
        except re.error:
            constraint["value"] = "x"
