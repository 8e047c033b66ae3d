"""The JSON Schema of a placement constraint, from the validator's own
operators and attributes (:mod:`domain.jobspec.constraints`)."""

from __future__ import annotations

import re
from typing import Any

from domain.jobspec import constraints
from domain.jobspec.schema_types import END, SCALAR, field, words

__all__ = ["constraint_def"]

Schema = dict[str, Any]


def _operator_pattern(canonical: tuple[str, ...]) -> str:
    """The spellings (any case, surrounding spaces) of the given canonical operators."""
    spellings = [k for k, v in constraints.OPERATOR_ALIASES.items() if v in canonical]
    return words(spellings, ignore_case=True, strip=True)


def _attribute_pattern() -> str:
    exact = [*constraints.NODE_FIELDS, *constraints.ATTRIBUTE_ALIASES]
    prefixes = [*constraints.NODE_PREFIXES, *constraints.ATTRIBUTE_PREFIX_ALIASES]
    name = "|".join([*(re.escape(e) for e in exact), *(re.escape(p) + r".*\S" for p in prefixes)])
    return rf"^\s*(?:\$\{{\s*(?:{name})\s*\}}|(?:{name}))\s*{END}"


def constraint_def() -> Schema:
    valueless = tuple(sorted(constraints.VALUELESS_OPERATORS))
    operators = sorted(constraints.OPERATOR_ALIASES)
    canonical = sorted(set(constraints.OPERATOR_ALIASES.values()))
    known = ", ".join([*constraints.NODE_FIELDS, *(p + "<key>" for p in constraints.NODE_PREFIXES)])
    known_code = ", ".join(f"`{name}`" for name in known.split(", "))

    def operator_is(*names: str) -> Schema:
        return {
            "properties": {"operator": {"pattern": _operator_pattern(names)}},
            "required": ["operator"],
        }

    return {
        "title": "Constraint",
        "description": "Where allocations may be placed: a node attribute compared with a "
        "value, or `distinct_hosts` (at most one allocation of the group per node).",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "attribute": field(
                {"type": "string"},
                f"The node attribute: {known_code}. Nomad's spellings are read too "
                "(`${meta.x}`, `${attr.x}`, `${node.unique.name}`).",
                "node.label.zone",
            ),
            "operator": field(
                {"type": "string", "pattern": words(operators, ignore_case=True, strip=True)},
                f"How to compare: {', '.join(canonical)} (and the aliases "
                f"{', '.join(k for k in operators if k not in canonical)}).",
                "=",
                "=",
                errorMessage="unknown operator",
            ),
            "value": field(
                SCALAR,
                "What to compare with; a list is comma-separated (`set_contains`). "
                f"{', '.join(valueless)} take none.",
                "eu-west-1a",
            ),
        },
        "allOf": [
            {
                "description": "`distinct_hosts` takes no `attribute` and no value (or "
                "`true`); every other operator needs `attribute`.",
                "if": operator_is("distinct_hosts"),
                "then": {
                    "properties": {
                        "value": {
                            "enum": [True, "true", ""],
                            "errorMessage": "distinct_hosts takes no value",
                        }
                    }
                },
                "else": {
                    "required": ["attribute"],
                    "errorMessage": "is required",
                    "properties": {
                        "attribute": {
                            "pattern": _attribute_pattern(),
                            "errorMessage": f"unknown attribute (known: {known})",
                        }
                    },
                },
            },
            {
                "description": f"Every operator but {', '.join(valueless)} needs a `value`.",
                "if": operator_is(*valueless),
                "else": {"required": ["value"], "errorMessage": "is required for this operator"},
            },
            {
                "description": "`set_contains` and `set_contains_any`: `value` lists at "
                "least one item.",
                "if": operator_is("set_contains", "set_contains_any"),
                "then": {
                    "properties": {
                        "value": {
                            "anyOf": [
                                {"type": ["number", "boolean"]},
                                {"type": "string", "pattern": r"[^,\s]"},
                            ],
                            "errorMessage": "must list at least one item",
                        }
                    }
                },
            },
        ],
        "x-rules": ["A `regexp` value is a valid regular expression."],
    }
