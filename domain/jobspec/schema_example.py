"""A commented example job file (what ``heroctl job init`` writes): the job
spec schema's own example as YAML, each field followed by the first sentence
of its description in the schema, so the comments follow the schema."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ["commented_example"]

Schema = Mapping[str, Any]

HEADER = """\
# A HeroCtl job. Edit it, then:
#   heroctl job validate {file}   # checks it against the job spec and asks the server
#   heroctl job run {file}        # submits it and follows the deployment
# Every field, its type and default: docs/jobspec.md, or GET /v1/jobs/schema.
# Durations: 500ms, 30s, 5m, 1h30m, 2d (or a number of seconds).
"""


def commented_example(schema: Schema, file: str = "example.job.yaml") -> str:
    """The schema's first example, as commented YAML."""
    lines = HEADER.format(file=file).splitlines()
    lines += _mapping(schema["examples"][0], schema, schema, 0)
    return "\n".join(lines) + "\n"


def _mapping(doc: Mapping[str, Any], obj: Schema, root: Schema, indent: int) -> list[str]:
    props: Mapping[str, Schema] = obj.get("properties", {})
    pad = " " * indent
    out: list[str] = []
    for key, value in doc.items():
        prop = _resolve(root, props.get(key, {}))
        comment = _first_sentence(prop.get("description", ""))
        inner = _object_of(prop, root)
        if isinstance(value, dict) and value and inner is not None:
            out.append(_commented(f"{pad}{key}:", comment))
            out += _mapping(value, inner, root, indent + 2)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out.append(_commented(f"{pad}{key}:", comment))
            item = _object_of(_items(prop, root), root) or {}
            for entry in value:
                block = _mapping(entry, item, root, indent + 4)
                block[0] = f"{pad}  - {block[0][indent + 4 :]}"
                out += block
        else:
            out.append(_commented(f"{pad}{key}: {_flow(value)}", comment))
    return out


def _commented(line: str, comment: str) -> str:
    return f"{line:<44} # {comment}" if comment else line


def _first_sentence(text: str) -> str:
    """Up to the first full stop, or the first semicolon when that is long."""
    sentence = re.split(r"\.(?:\s|$)", text, maxsplit=1)[0]
    if len(sentence) > 60:
        sentence = sentence.split("; ", 1)[0]
    return sentence


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def _resolve(root: Schema, schema: Schema) -> Schema:
    while "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _object_of(schema: Schema, root: Schema) -> Schema | None:
    """The object schema a field holds (through a nullable ``anyOf``)."""
    schema = _resolve(root, schema)
    if "properties" in schema:
        return schema
    for branch in schema.get("anyOf", []):
        found = _object_of(branch, root)
        if found is not None:
            return found
    return None


def _items(schema: Schema, root: Schema) -> Schema:
    schema = _resolve(root, schema)
    if "items" in schema:
        return schema["items"]
    for branch in schema.get("anyOf", []):
        branch = _resolve(root, branch)
        if "items" in branch:
            return branch["items"]
    return {}
