"""The job spec as one JSON Schema (draft 2020-12), built from the validator's
own constants (keys, enums, defaults, patterns), so the two cannot drift
apart unnoticed: ``tests/domain/test_jobspec_schema.py`` fails when they do.

The schema describes what a client may submit (``POST /v1/jobs``, ``heroctl
job run``): both forms :func:`domain.jobspec.normalize_job` accepts (the full
form and the single-task shorthand), the normalized form it returns, and the
server-owned fields it ignores. It is the structure; what one field says
about another (a check's port names a port of its task, deadlines grow, names
are unique, ...) is listed under ``x-rules`` where it applies and checked by
the validator only. ``GET /v1/jobs/schema`` serves it, ``heroctl job
validate`` checks files with it, ``docs/jobspec.md`` is rendered from it::

    python -m domain.jobspec.schema            # the schema (JSON)
    python -m domain.jobspec.schema --markdown # docs/jobspec.md
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

from domain.jobspec import job
from domain.jobspec.schema_group import group_defs, group_properties
from domain.jobspec.schema_task import task_defs, task_properties
from domain.jobspec.schema_types import SCALAR, field, forbidden, nullable, string_map
from domain.jobspec.values import DNS_LABEL_RE

__all__ = ["RESERVED_JOB_NAMES", "SCHEMA_ID", "job_schema", "schema_json", "shorthand_keys"]

Schema = dict[str, Any]
SCHEMA_ID = "urn:heroctl:job-spec"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Names the API's own routes under /v1/jobs/ take (GET /v1/jobs/schema): the
# API refuses them for a job (api.jobspec), and so does the schema.
RESERVED_JOB_NAMES = ("schema",)


# The root's examples: the full form and the shorthand.
EXAMPLES: list[Schema] = [
    {
        "name": "web",
        "type": "service",
        "groups": [
            {
                "name": "app",
                "count": 2,
                "update": {"max_parallel": 1, "healthy_deadline": "2m", "auto_revert": True},
                "ingress": [{"host": "app.example.com", "path": "/", "port": "http"}],
                "tasks": [
                    {
                        "name": "nginx",
                        "image": "nginx:1.27",
                        "env": {"NGINX_ENTRYPOINT_QUIET_LOGS": "1"},
                        "resources": {"cpu": 200, "memory": 128},
                        "ports": [{"name": "http", "to": 80}],
                        "check": {"type": "http", "port": "http", "path": "/"},
                    }
                ],
            }
        ],
    },
    {"name": "cache", "image": "redis:7", "count": 2, "ports": [{"name": "redis", "to": 6379}]},
]


def shorthand_keys() -> list[str]:
    """The task and group fields the single-task shorthand takes at the top
    level, in the docs' order."""
    task_keys = [k for k in task_properties() if k in job.SHORTHAND_TASK_KEYS]
    group_keys = [k for k in group_properties() if k in job.SHORTHAND_GROUP_KEYS]
    return [*group_keys, *task_keys]


def _job_properties() -> Schema:
    return {
        "name": field(
            {
                "$ref": "#/$defs/dns_label",
                "not": {
                    "enum": list(RESERVED_JOB_NAMES),
                    "errorMessage": "is reserved (the API's /v1/jobs/schema)",
                },
            },
            "The job's name, unique in the cluster; also the group's and the task's in "
            f"the shorthand. Not {', '.join(map(repr, RESERVED_JOB_NAMES))} (a route of the "
            "API).",
            "web",
        ),
        "type": field(
            {"enum": list(job.JOB_TYPES)},
            "`service` runs until stopped (and is replaced when it fails); `batch` runs "
            "to completion.",
            "batch",
            "service",
        ),
        "priority": field(
            {"type": "integer", "minimum": 1, "maximum": 100},
            "The job's priority, 1 to 100.",
            70,
            job.DEFAULT_PRIORITY,
        ),
        "meta": field(
            nullable(string_map(SCALAR)),
            "Free-form strings about the job (numbers and booleans become strings).",
            {"owner": "team-payments"},
            {},
        ),
        "constraints": field(
            nullable({"type": "array", "items": {"$ref": "#/$defs/constraint"}}),
            "Where every allocation of the job may run.",
            [{"attribute": "node.label.zone", "operator": "=", "value": "eu-1"}],
            [],
        ),
        "groups": field(
            {"type": "array", "items": {"$ref": "#/$defs/group"}},
            "The task groups. A job without groups (nor shorthand fields) is stored and "
            "runs nothing.",
            [{"name": "app", "tasks": [{"name": "web", "image": "nginx:1.27"}]}],
        ),
    }


def _shorthand_properties() -> Schema:
    out: Schema = {}
    for key in shorthand_keys():
        where = "group" if key in job.SHORTHAND_GROUP_KEYS else "task"
        out[key] = {"$ref": f"#/$defs/{where}/properties/{key}"}
    return out


def _server_properties() -> Schema:
    return {
        key: {
            "description": "Set by the server; ignored in a submission (a job read back "
            "from the API may be submitted as it is).",
            "readOnly": True,
        }
        for key in sorted(job.SERVER_OWNED_FIELDS)
    }


@functools.cache
def _build() -> str:
    shorthand = shorthand_keys()
    schema: Schema = {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        "title": "Job",
        "description": "A HeroCtl job: what should run, where, and how a new version "
        "replaces the old. Either the full form (`groups[].tasks[]`) or the single-task "
        "shorthand: group fields (`count`, `update`, `restart`) and task fields (all but "
        "`name` and `constraints`) at the top level, making one group and one task both "
        "named after the job. Durations are seconds or text such as `500ms`, `30s`, "
        "`5m`, `1h30m`, `2d` (rounded to the millisecond, at most 10 years).",
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {**_job_properties(), **_shorthand_properties(), **_server_properties()},
        "allOf": [
            {
                "description": "The shorthand (any of its fields at the top level) takes no "
                "`groups`, and its task follows the task's rules.",
                "if": {"anyOf": [{"required": [key]} for key in shorthand]},
                "then": {
                    "properties": {
                        "groups": forbidden(
                            "task fields at the top level cannot be combined with 'groups'"
                        )
                    },
                    "allOf": [{"$ref": "#/$defs/task_rules"}],
                },
            }
        ],
        "x-rules": ["Group names are unique in the job."],
        "examples": EXAMPLES,
        "$defs": {
            "dns_label": {
                "x-type": "DNS label",
                "type": "string",
                "pattern": DNS_LABEL_RE.pattern,
                "errorMessage": "must be a DNS label: 1-63 lowercase letters, digits and "
                "'-', starting and ending with a letter or digit",
            },
            **group_defs(),
            **task_defs(),
        },
    }
    return json.dumps(schema, indent=2, ensure_ascii=False)


def schema_json() -> str:
    """The schema as indented JSON text (built once)."""
    return _build()


def job_schema() -> Schema:
    """The job spec's JSON Schema (a fresh copy: callers may change it)."""
    return json.loads(_build())


def main(argv: list[str] | None = None) -> int:
    """``python -m domain.jobspec.schema [--markdown]``: print the schema or its docs."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--markdown"]:
        from domain.jobspec.schema_markdown import render

        sys.stdout.write(render(job_schema()))
    elif not args:
        sys.stdout.write(schema_json() + "\n")
    else:
        sys.stderr.write("usage: python -m domain.jobspec.schema [--markdown]\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
