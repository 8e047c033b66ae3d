"""The words the OpenAPI route tables are written in: JSON Schema shorthands,
``Op`` (one route's description) and the query parameters routes share.

A table entry says only what is particular to its route (summary, query
parameters, body, success answers, errors of its own); the document
(:mod:`api.openapi.document`) adds what every route has: path parameters
from the template, the security the policy table demands, and the error
responses (the envelope of :mod:`httpkit.errors`) that apply to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
ANY: Schema = {}
INDEX: Schema = {"type": "integer", "minimum": 0, "description": "A raft index."}
TIME: Schema = {"type": ["string", "null"], "format": "date-time"}
MS: Schema = {"type": ["integer", "null"], "description": "Unix milliseconds."}
DURATION_PATTERN = r"^(\d+(\.\d*)?|\.\d+|((\d+(\.\d*)?|\.\d+)(ms|s|m|h|d|w))+)$"
DURATION: Schema = {
    "type": "string",
    "pattern": DURATION_PATTERN,
    "examples": ["500ms", "30s", "5m", "1h30m"],
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def arr(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def nullable(schema: Schema) -> Schema:
    """``schema`` or null (a type list when ``schema`` has one plain type)."""
    kind = schema.get("type")
    if isinstance(kind, str) and "$ref" not in schema:
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(
    props: Mapping[str, Schema],
    required: Iterable[str] | str = (),
    *,
    closed: bool = False,
    description: str = "",
) -> Schema:
    """An object with these properties (``required="*"``: all of them).
    Answers stay open (``closed=False``): a field added later breaks no client."""
    out: Schema = {"type": "object", "properties": dict(props)}
    names = list(props) if required == "*" else list(required)
    if names:
        out["required"] = names
    if closed:
        out["additionalProperties"] = False
    if description:
        out["description"] = description
    return out


def string_map(values: Schema = STR) -> Schema:
    return {"type": "object", "additionalProperties": values}


def described(schema: Schema, text: str) -> Schema:
    return {**schema, "description": text}


@dataclass(frozen=True)
class Param:
    """A query (or header) parameter."""

    name: str
    schema: Schema
    description: str
    required: bool = False
    where: str = "query"


@dataclass(frozen=True)
class Answer:
    """A success response: its status, body schema (None: no JSON body) and media type."""

    status: int
    schema: Schema | None
    description: str = ""
    media: str = "application/json"


@dataclass(frozen=True)
class Op:
    """One route: method, path template (aiohttp's, ``{name}`` parameters) and
    what the document says of it beyond the common parts."""

    method: str
    path: str
    summary: str
    answers: tuple[Answer, ...]
    description: str = ""
    query: tuple[Param, ...] = ()
    body: Schema | None = None
    body_required: bool = True
    body_media: str = "application/json"
    errors: Mapping[int, str] = field(default_factory=dict)  # status -> when it happens
    access: str | None = None  # None: what domain.policy says; else the words to print
    internal: bool = False  # used by agents and servers, not by people
    # other media types of its success answer (text: a stream, another format)
    other_media: tuple[str, ...] = ()


def ok(
    schema: Schema | None,
    description: str = "",
    status: int = 200,
    media: str = "application/json",
) -> Answer:
    return Answer(status, schema, description or _DEFAULT_OK.get(status, "OK"), media)


_DEFAULT_OK = {200: "OK", 201: "Created", 202: "Accepted"}


# --- query parameters several routes share -----------------------------------------------------

STALE = Param(
    "stale",
    {"type": "string", "examples": ["true"]},
    "Answer from this server's local state at once instead of a consistent read "
    "(any value but `false`, `0` or `no` means true).",
)
INDEX_PARAM = Param(
    "index",
    {"type": "integer", "minimum": 0},
    "Long polling: block until the data's `X-HeroCtl-Index` passes this index (or `wait` ends).",
)
WAIT = Param(
    "wait",
    DURATION,
    "Long polling: the longest wait (a duration, at most 10m; default 5m).",
)
LONG_POLL = (INDEX_PARAM, WAIT, STALE)


def job_filter(what: str) -> Param:
    return Param("job", STR, f"Only the {what} of this job.")
