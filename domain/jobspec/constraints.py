"""Placement constraints: operators and node attributes in canonical spelling."""

from __future__ import annotations

import re
from typing import Any

from domain.jobspec.errors import JobSpecError
from domain.jobspec.values import (
    as_list,
    as_object,
    as_str,
    join_path,
    scalar_str,
)

OPERATOR_ALIASES = {
    "=": "=",
    "==": "=",
    "is": "=",
    "!=": "!=",
    "not": "!=",
    "regexp": "regexp",
    "set_contains": "set_contains",
    "set_contains_all": "set_contains",
    "set_contains_any": "set_contains_any",
    "is_set": "is_set",
    "is_not_set": "is_not_set",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
    "distinct_hosts": "distinct_hosts",
}
VALUELESS_OPERATORS = {"is_set", "is_not_set", "distinct_hosts"}
NODE_FIELDS = ("node.id", "node.name", "node.address", "node.status")
NODE_PREFIXES = ("node.label.", "node.attr.", "node.driver.")
# Nomad spellings, accepted and rewritten to ours.
ATTRIBUTE_ALIASES = {
    "node.unique.id": "node.id",
    "node.unique.name": "node.name",
    "attr.unique.network.ip-address": "node.address",
}
ATTRIBUTE_PREFIX_ALIASES = {"meta.": "node.label.", "attr.": "node.attr."}


def _attribute(value: Any, path: str) -> str:
    text = as_str(value, path).strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1].strip()
    text = ATTRIBUTE_ALIASES.get(text, text)
    for prefix, ours in ATTRIBUTE_PREFIX_ALIASES.items():
        if text.startswith(prefix):
            text = ours + text[len(prefix) :]
            break
    if text in NODE_FIELDS:
        return text
    for prefix in NODE_PREFIXES:
        if text.startswith(prefix) and len(text) > len(prefix):
            return text
    known = ", ".join([*NODE_FIELDS, *(p + "<key>" for p in NODE_PREFIXES)])
    raise JobSpecError(path, f"unknown attribute {value!r} (known: {known})")


def normalize_constraint(value: Any, path: str) -> dict[str, str]:
    """``{attribute, operator, value}`` with the operator and attribute in
    canonical spelling; regexps are compiled here so a bad one is a 400."""
    doc = as_object(value, path, {"attribute", "operator", "value"})
    raw_op = doc.get("operator", "=")
    op_path = join_path(path, "operator")
    if not isinstance(raw_op, str) or raw_op.strip().lower() not in OPERATOR_ALIASES:
        known = ", ".join(sorted(set(OPERATOR_ALIASES)))
        raise JobSpecError(op_path, f"unknown operator {raw_op!r} (known: {known})")
    op = OPERATOR_ALIASES[raw_op.strip().lower()]
    if op == "distinct_hosts":
        if "value" in doc and scalar_str(doc["value"], join_path(path, "value")) not in (
            "true",
            "",
        ):
            raise JobSpecError(join_path(path, "value"), "distinct_hosts takes no value")
        return {"attribute": "", "operator": op, "value": ""}
    if "attribute" not in doc:
        raise JobSpecError(join_path(path, "attribute"), "is required")
    attribute = _attribute(doc["attribute"], join_path(path, "attribute"))
    if op in VALUELESS_OPERATORS:
        return {"attribute": attribute, "operator": op, "value": ""}
    if "value" not in doc or doc["value"] is None:
        raise JobSpecError(join_path(path, "value"), f"is required for operator {op!r}")
    val = scalar_str(doc["value"], join_path(path, "value"))
    if op == "regexp":
        try:
            re.compile(val)
        except re.error as exc:
            raise JobSpecError(join_path(path, "value"), f"invalid regexp: {exc}") from None
    if op in ("set_contains", "set_contains_any") and not [v for v in val.split(",") if v.strip()]:
        raise JobSpecError(join_path(path, "value"), "must list at least one item")
    return {"attribute": attribute, "operator": op, "value": val}


def constraint_list(value: Any, path: str) -> list[dict[str, str]]:
    if value is None:
        return []
    return [normalize_constraint(c, join_path(path, i)) for i, c in enumerate(as_list(value, path))]
