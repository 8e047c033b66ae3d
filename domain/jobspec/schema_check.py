"""A job document checked against the job spec's JSON Schema, each error as
the validator would say it: the field's path (``groups[0].tasks[0].image``)
and a short message. ``heroctl job validate`` prints these; the tests compare
them with :func:`domain.jobspec.normalize_job`'s errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from domain.jobspec.schema import job_schema
from domain.jobspec.values import join_path

__all__ = ["SchemaError", "schema_errors", "validator"]

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


@dataclass(frozen=True, order=True)
class SchemaError:
    """One problem: where (a field path; empty for the document) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


_VALIDATOR: list[Draft202012Validator] = []


def validator() -> Draft202012Validator:
    """The schema's validator (built once)."""
    if not _VALIDATOR:
        _VALIDATOR.append(Draft202012Validator(job_schema()))
    return _VALIDATOR[0]


def schema_errors(doc: Any) -> list[SchemaError]:
    """Every error of ``doc`` against the schema, sorted by path; none: it conforms."""
    check = validator()
    found: set[SchemaError] = set()
    for error in check.iter_errors(doc):
        found.update(_explain(error, check.schema))
    return sorted(found)


def _path(parts: Iterable[Any]) -> str:
    path = ""
    for part in parts:
        path = join_path(path, part)
    return path


def _resolve(root: Mapping[str, Any], ref: str) -> Any:
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _message_of(error: ValidationError, root: Mapping[str, Any]) -> str | None:
    """The ``errorMessage`` of the deepest schema on the error's way, if any."""
    node: Any = root
    message = root.get("errorMessage")
    for part in error.absolute_schema_path:
        # jsonschema's paths step through a `$ref` without naming it
        while isinstance(node, dict) and part not in node and "$ref" in node:
            node = _resolve(root, node["$ref"])
            message = node.get("errorMessage", message)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and "errorMessage" in node:
            message = node["errorMessage"]
    return message


def _explain(error: ValidationError, root: Mapping[str, Any]) -> list[SchemaError]:
    path = _path(error.absolute_path)
    kind = error.validator
    if kind == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        return [
            SchemaError(join_path(path, key), f"unknown field (known fields: {', '.join(known)})")
            for key in error.instance
            if key not in known
        ]
    if kind == "required":
        message = error.schema.get("errorMessage", "is required")
        return [
            SchemaError(join_path(path, key), message)
            for key in error.validator_value
            if key not in error.instance
        ]
    if "propertyNames" in error.absolute_schema_path:  # the error is about a key
        message = _message_of(error, root) or f"{error.instance!r} is not a valid name"
        return [SchemaError(join_path(path, str(error.instance)), message)]
    if kind in ("anyOf", "oneOf") and error.context:
        branches = _matching_branches(error)
        if len(branches) == 1:
            return [e for sub in branches[0] for e in _explain(sub, root)]
    explained = None if kind == "type" else _message_of(error, root)
    if explained is not None:
        return [SchemaError(path, explained)]
    return [SchemaError(path, _generic(error))]


def _matching_branches(error: ValidationError) -> list[list[ValidationError]]:
    """The errors of each ``anyOf`` branch that could be meant for this value:
    those whose ``type`` it has (a list is not meant for the null branch)."""
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in error.context or []:
        by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
    return [
        errors
        for _, errors in sorted(by_branch.items())
        if not any(e.validator == "type" and not e.relative_path for e in errors)
    ]


def _generic(error: ValidationError) -> str:
    kind, value = error.validator, error.validator_value
    if kind == "type":
        names = [_TYPE_NAMES.get(k, k) for k in (value if isinstance(value, list) else [value])]
        if len(names) > 1:
            names = [n.replace("true or false", "a boolean") for n in names]
            return f"must be {', '.join(names[:-1])} or {names[-1]}"
        return f"must be {names[0]}"
    if kind in ("enum", "const"):
        choices = value if kind == "enum" else [value]
        return f"must be one of {', '.join(map(_show, choices))}, got {_show(error.instance)}"
    if kind in ("minimum", "exclusiveMinimum"):
        return f"must be >= {value}, got {error.instance}"
    if kind in ("maximum", "exclusiveMaximum"):
        return f"must be <= {value}, got {error.instance}"
    if kind == "minItems":
        return f"must list at least {value} item{'s' if value != 1 else ''}"
    if kind == "maxItems":
        return f"at most {value} entries"
    if kind == "minLength":
        return "must not be empty"
    if kind == "maxLength":
        return f"at most {value} characters"
    if kind == "not":
        return "is not allowed here"
    return error.message


def _show(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)
