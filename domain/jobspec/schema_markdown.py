"""``docs/jobspec.md`` rendered from the job spec's JSON Schema: one table per
object (field, type, default, example, description), the rules that tie
fields together, and the examples. ``python -m domain.jobspec.schema
--markdown > docs/jobspec.md``; a test fails when the checked-in file differs."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ["SECTIONS", "render"]

Schema = Mapping[str, Any]

# The objects in the order the page lists them ($defs names; the root first).
SECTIONS = (
    "group",
    "update",
    "restart",
    "ingress",
    "task",
    "resources",
    "port",
    "check",
    "volume",
    "registry_auth",
    "constraint",
)

_INTRO = """\
<!-- Generated from the job spec's JSON Schema (domain/jobspec/schema.py) by
     `python -m domain.jobspec.schema --markdown > docs/jobspec.md`: edit the
     schema, not this file (tests/domain/test_jobspec_docs.py compares them). -->

# Job spec reference

A job is a JSON or YAML document submitted with `heroctl job run FILE` (or
`POST /v1/jobs`). Its JSON Schema (draft 2020-12) is served at
`GET /v1/jobs/schema`, and the server's validator is checked against it by the
tests: every field below is exactly what the server accepts.

- `heroctl job init` writes a commented example (`example.job.yaml`).
- `heroctl job validate FILE` checks a file against the schema, then asks the
  server (a dry run of the submit, `POST /v1/jobs/:name/plan`); `--local`
  checks without a server. Errors name the field: `groups[0].tasks[0].image:
  is required for the docker driver`.
- `examples/` holds real job files: a web app with a health check and an
  ingress route, a worker, a batch job with secrets.

**Two forms.** The full form lists `groups`, each with its `tasks`. The
*shorthand* puts group fields (`count`, `update`, `restart`) and task fields
(every one but `name` and `constraints`) at the top level: it is one group
and one task, both named after the job, and its errors name the fields as
written (`image`, not `groups[0].tasks[0].image`).

**Values.** A *duration* is a number of seconds or a text of one or more
`<number><unit>` (units `ms s m h d w`: `500ms`, `30s`, `5m`, `1h30m`, `2d`),
rounded to the millisecond, at most 10 years. A *DNS label* is 1-63
lowercase letters, digits and `-`, starting and ending with a letter or
digit. A *command* is a list of arguments, or one string split like a shell
would (`"nginx -g 'daemon off;'"`). A *secret reference* is `name` (the
secret's latest version) or `name@version`. Map values (env, meta, labels)
are strings; numbers and booleans are turned into strings. A field given as
`null` is the same as a field left out. The server stores the job with every
default filled in (`heroctl job status NAME` shows it).
"""


def render(schema: Schema) -> str:
    """The whole page."""
    out = [_INTRO]
    examples = schema.get("examples") or []
    if examples:
        out.append("## Examples\n")
        for doc in examples:
            form = "The shorthand" if "groups" not in doc else "The full form"
            out.append(f"{form}:\n\n```yaml\n{_yaml(doc)}```\n")
    out.append(_section(schema, schema, "job"))
    defs = schema.get("$defs", {})
    for name in SECTIONS:
        out.append(_section(defs[name], schema, name))
    return "\n".join(out).rstrip() + "\n"


def _section(obj: Schema, root: Schema, name: str) -> str:
    props: Mapping[str, Schema] = obj.get("properties", {})
    required = set(obj.get("required", []))
    shorthand = {k: v for k, v in props.items() if "$ref" in v and len(v) == 1}
    server = {k: v for k, v in props.items() if v.get("readOnly")}
    lines = [f"## {obj.get('title', name)}\n", f"{obj.get('description', '')}\n"]
    lines.append("| Field | Type | Default | Example | Description |")
    lines.append("|---|---|---|---|---|")
    for key, prop in props.items():
        if key in shorthand or key in server:
            continue
        lines.append(_row(key, prop, root, key in required))
    lines.append("")
    conditions = [c["description"] for c in obj.get("allOf", []) if "description" in c]
    rules = list(obj.get("x-rules", []))
    if conditions or rules:
        lines.append("Also checked:\n")
        lines += [f"- {text}" for text in [*conditions, *rules]]
        lines.append("")
    if shorthand:
        keys = ", ".join(f"[`{k}`](#{_anchor(_ref_title(v, root))})" for k, v in shorthand.items())
        lines.append(f"Shorthand fields (at the top level, instead of `groups`): {keys}.\n")
    if server:
        keys = ", ".join(f"`{k}`" for k in server)
        lines.append(
            f"Set by the server and ignored in a submission (a job read back from the API "
            f"may be submitted as it is): {keys}.\n"
        )
    return "\n".join(lines)


def _row(key: str, prop: Schema, root: Schema, required: bool) -> str:
    default = _code(prop["default"]) if "default" in prop else "required" if required else ""
    example = _code(prop["examples"][0]) if prop.get("examples") else ""
    description = prop.get("description", "")
    cells = [f"`{key}`", _type(prop, root), default, example, description]
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _type(schema: Schema, root: Schema) -> str:
    if "x-type" in schema:
        return str(schema["x-type"])
    if "$ref" in schema:
        target = _resolve(root, schema["$ref"])
        if "title" in target:
            return f"[{target['title']}](#{_anchor(target['title'])})"
        return _type(target, root)
    if "anyOf" in schema:
        return " or ".join(dict.fromkeys(_type(branch, root) for branch in schema["anyOf"]))
    if "enum" in schema:
        return " or ".join(f"`{_plain(v)}`" for v in schema["enum"] if v is not None)
    kinds = schema.get("type", "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return " or ".join(_kind(k, schema, root) for k in kinds)


def _kind(kind: str, schema: Schema, root: Schema) -> str:
    if kind == "array":
        return f"list of {_type(schema.get('items', {}), root)}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), Mapping):
        return f"map of {_type(schema['additionalProperties'], root)}"
    if kind == "integer" and "minimum" in schema and "maximum" in schema:
        return f"integer ({schema['minimum']}-{schema['maximum']})"
    return kind


def _ref_title(prop: Schema, root: Schema) -> str:
    """The title of the object a shorthand field's ``$ref`` points into."""
    parts = prop["$ref"].lstrip("#/").split("/")
    return str(root["$defs"][parts[1]].get("title", parts[1]))


def _resolve(root: Schema, ref: str) -> Schema:
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _code(value: Any) -> str:
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=88)
