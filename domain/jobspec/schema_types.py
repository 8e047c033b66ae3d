"""The building blocks of the job spec's JSON Schema (:mod:`domain.jobspec.schema`):
a documented field, nullable values, durations, string maps, case-insensitive
words and the one way to forbid a key with a readable reason.

Every field carries ``description``, ``examples`` and, when it has one, the
``default`` the validator uses; ``errorMessage`` (an annotation validators
ignore) is what :mod:`domain.jobspec.schema_check` prints when a value fails
that subschema, so the CLI's messages read like the server's.
"""

from __future__ import annotations

import re
from typing import Any

from domain import durations
from domain.jobspec.values import MAX_DURATION

__all__ = [
    "END",
    "NO_DEFAULT",
    "SCALAR",
    "any_case",
    "duration",
    "field",
    "forbidden",
    "nullable",
    "string_map",
    "words",
]

Schema = dict[str, Any]

NO_DEFAULT = object()
# The end of the text. Python's `$` (which validators written in Python use
# for `pattern`) also matches before a trailing newline; `$(?!\n)` does not,
# in Python and in ECMA-262 alike.
END = r"$(?!\n)"
# Env, meta, label and constraint values: a string, or a number or boolean
# the validator turns into one (`true` -> "true", `3` -> "3").
SCALAR: Schema = {"type": ["string", "number", "boolean"], "x-type": "string"}

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_UNITS = sorted(durations.UNIT_SECONDS, key=len, reverse=True)  # "ms" before "m"


def any_case(word: str) -> str:
    """A regex matching ``word`` in any letter case (``is`` -> ``[iI][sS]``)."""
    return "".join(
        f"[{c.lower()}{c.upper()}]" if c.isalpha() and c.lower() != c.upper() else re.escape(c)
        for c in word
    )


def words(choices: list[str] | tuple[str, ...], *, ignore_case: bool, strip: bool) -> str:
    """A whole-text regex for one of ``choices``, optionally in any case and
    between whitespace (the validator's ``.strip().lower()``)."""
    alts = "|".join(any_case(c) if ignore_case else re.escape(c) for c in choices)
    space = r"\s*" if strip else ""
    return rf"^{space}(?:{alts}){space}{END}"


def _duration_pattern(positive: bool) -> str:
    unit = "|".join(any_case(u) for u in _UNITS)
    body = rf"(?:{_NUMBER}|(?:{_NUMBER}(?:{unit}))+)"
    nonzero = r"(?=[^1-9]*[1-9])" if positive else ""
    return rf"^{nonzero}\s*{body}\s*{END}"


def duration(positive: bool = False) -> Schema:
    """Seconds as a number, or a duration text in :mod:`domain.durations`'
    grammar; rounded to the millisecond, at most 10 years."""
    number: Schema = {"type": "number", "minimum": 0.001 if positive else 0}
    number["maximum"] = MAX_DURATION
    return {
        "x-type": "duration > 0" if positive else "duration",
        "anyOf": [number, {"type": "string", "pattern": _duration_pattern(positive)}],
        "errorMessage": (
            "must be a duration greater than zero such as '10s' or '5m'"
            if positive
            else "must be a duration such as '10s' or '5m'"
        ),
    }


def nullable(schema: Schema) -> Schema:
    """``schema`` or null (which the validator reads as the field left out)."""
    if "type" in schema and "anyOf" not in schema and "enum" not in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        return {**schema, "type": [*kinds, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def field(
    schema: Schema,
    description: str,
    example: Any,
    default: Any = NO_DEFAULT,
    **extra: Any,
) -> Schema:
    """``schema`` documented: its description, one example, its default."""
    out: Schema = {"description": description, **schema, **extra, "examples": [example]}
    if default is not NO_DEFAULT:
        out["default"] = default
    return out


def forbidden(reason: str) -> Schema:
    """A key that must not be there (in a conditional), with why."""
    return {"not": {}, "errorMessage": reason}


def string_map(
    values: Schema, key_pattern: str | None = None, key_message: str | None = None
) -> Schema:
    """An object of names to values (env, meta, labels, secrets)."""
    out: Schema = {"type": "object", "additionalProperties": values}
    if key_pattern is not None:
        names: Schema = {"pattern": key_pattern}
        if key_message:
            names["errorMessage"] = key_message
        out["propertyNames"] = names
    return out
