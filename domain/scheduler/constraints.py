"""Job, group and task constraints compiled to node predicates."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from domain.scheduler.model import Node


def _node_value(node: Node, attribute: str) -> str | None:
    if attribute == "node.name":
        return node.name
    if attribute == "node.id":
        return node.id
    if attribute == "node.address":
        return node.address
    if attribute == "node.status":
        return node.status
    if attribute.startswith("node.label."):
        return node.labels.get(attribute[11:])
    if attribute.startswith("node.attr."):
        return node.attributes.get(attribute[10:])
    if attribute.startswith("node.driver."):
        return "true" if attribute[12:] in node.drivers else None
    return None


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _compare(op: str, left: str, right: str) -> bool:
    ln, rn = _as_number(left), _as_number(right)
    a: Any
    b: Any
    a, b = (ln, rn) if ln is not None and rn is not None else (left, right)
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def compile_constraint(c: Mapping[str, str]) -> Callable[[Node], bool]:
    attribute, op, value = c["attribute"], c["operator"], c.get("value", "")
    if op == "=":
        return lambda n: _node_value(n, attribute) == value
    if op == "!=":
        return lambda n: _node_value(n, attribute) != value
    if op == "regexp":
        pattern = re.compile(value)
        return lambda n: (v := _node_value(n, attribute)) is not None and bool(pattern.search(v))
    if op in ("set_contains", "set_contains_any"):
        wanted = {v.strip() for v in value.split(",") if v.strip()}
        if op == "set_contains":
            return lambda n: (
                (v := _node_value(n, attribute)) is not None
                and wanted <= {x.strip() for x in v.split(",")}
            )
        return lambda n: (
            (v := _node_value(n, attribute)) is not None
            and bool(wanted & {x.strip() for x in v.split(",")})
        )
    if op == "is_set":
        return lambda n: _node_value(n, attribute) is not None
    if op == "is_not_set":
        return lambda n: _node_value(n, attribute) is None
    if op in ("<", "<=", ">", ">="):
        return lambda n: (v := _node_value(n, attribute)) is not None and _compare(op, v, value)
    raise ValueError(f"unknown constraint operator {op!r}")


def describe_constraint(c: Mapping[str, str]) -> str:
    if c["operator"] in ("is_set", "is_not_set"):
        return f"{c['attribute']} {c['operator']}"
    return f"{c['attribute']} {c['operator']} {c.get('value', '')}"
