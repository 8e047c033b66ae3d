"""The JSON Schema of a task group and its parts (update, restart, ingress),
from the validator's own constants (:mod:`domain.jobspec.groups`,
:mod:`domain.jobspec.ingress`); constraints: :mod:`domain.jobspec.schema_constraint`."""

from __future__ import annotations

from typing import Any

from domain.certificates import MAX_HOST_LENGTH
from domain.jobspec import groups, ingress
from domain.jobspec.schema_constraint import constraint_def
from domain.jobspec.schema_types import (
    END,
    SCALAR,
    duration,
    field,
    forbidden,
    nullable,
    string_map,
)

Schema = dict[str, Any]

MAX_RESTART_ATTEMPTS = 10_000
MAX_INGRESS_PATH = 1024
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"


def _update() -> Schema:
    by_hand = list(groups.PROMOTED_BY_HAND)
    progress = groups.OPTIONAL_UPDATE["progress_deadline"]
    props: Schema = {
        "strategy": field(
            {"enum": list(groups.STRATEGIES)},
            "`rolling` replaces `max_parallel` allocations at a time; `canary` first runs "
            "`canary` new ones beside the old and waits for a promote; `blue-green` runs a "
            "whole new set beside the old and switches on promote; `rainbow` runs a whole "
            "new set, promotes itself once healthy, and lets the old versions keep their "
            "open connections for `drain_timeout`.",
            "canary",
            groups.OPTIONAL_UPDATE["strategy"],
        ),
        "max_parallel": field(
            {"type": "integer", "minimum": 0, "maximum": groups.MAX_COUNT},
            "How many allocations are replaced at a time.",
            2,
            groups.DEFAULT_UPDATE["max_parallel"],
        ),
        "min_healthy_time": field(
            duration(),
            "How long a new allocation must be healthy before it counts as healthy.",
            "10s",
            groups.DEFAULT_UPDATE["min_healthy_time"],
        ),
        "healthy_deadline": field(
            duration(),
            "How long a new allocation has to become healthy; longer than `min_healthy_time`.",
            "5m",
            groups.DEFAULT_UPDATE["healthy_deadline"],
        ),
        "progress_deadline": field(
            duration(),
            "The deployment fails when no allocation becomes healthy within it; longer "
            f"than `healthy_deadline` (default {progress}s, or `healthy_deadline` + "
            f"{progress}s when that is {progress}s or more).",
            "10m",
            progress,
        ),
        "auto_revert": field(
            {"type": "boolean"},
            "A failed deployment resubmits the job's last stable version.",
            True,
            groups.OPTIONAL_UPDATE["auto_revert"],
        ),
        "canary": field(
            {"type": "integer", "minimum": 0, "maximum": groups.MAX_COUNT},
            f"{' and '.join(by_hand)} only: how many new allocations run beside the old "
            "ones before the promote, 1 to `count` (blue-green: default `count`).",
            1,
            1,
        ),
        "auto_promote": field(
            {"type": "boolean"},
            f"{' and '.join(by_hand)} only: promote as soon as the canaries are healthy.",
            True,
            groups.OPTIONAL_UPDATE["auto_promote"],
        ),
        "stagger": field(
            duration(),
            "How long to wait between two batches of replacements.",
            "30s",
            groups.OPTIONAL_UPDATE["stagger"],
        ),
        "drain_timeout": field(
            duration(),
            "rainbow only: how long old versions may keep serving their open connections.",
            "1h",
            groups.DRAIN_TIMEOUT,
        ),
    }
    return {
        "title": "Update",
        "description": "How a new version of the group replaces the running one (service "
        "jobs): its deployment.",
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "allOf": [
            {
                "description": f"`canary` and `auto_promote` apply to {' and '.join(by_hand)} "
                "only.",
                "if": {"properties": {"strategy": {"enum": by_hand}}, "required": ["strategy"]},
                "else": {
                    "properties": {
                        key: forbidden(f"only applies to the strategies {', '.join(by_hand)}")
                        for key in ("canary", "auto_promote")
                    }
                },
            },
            {
                "description": "`drain_timeout` applies to rainbow only.",
                "if": {"properties": {"strategy": {"const": "rainbow"}}, "required": ["strategy"]},
                "else": {
                    "properties": {
                        "drain_timeout": forbidden("only applies to the rainbow strategy")
                    }
                },
            },
        ],
        "x-rules": [
            "`healthy_deadline` is longer than `min_healthy_time`; `progress_deadline` is "
            "longer than `healthy_deadline`.",
            "`canary` is at most the group's `count`, and at least 1 unless `count` is 0.",
        ],
    }


def _restart() -> Schema:
    d = groups.DEFAULT_RESTART
    return {
        "title": "Restart",
        "description": "What the node does when a task exits (a batch task that exits 0 is "
        "complete): start it again after `delay` while fewer than `attempts` restarts "
        "happened within `interval`; then `fail` the allocation (a service job gets a "
        "replacement) or `delay` until the interval is over.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "attempts": field(
                {"type": "integer", "minimum": 0, "maximum": MAX_RESTART_ATTEMPTS},
                "Restarts allowed within `interval`.",
                5,
                d["attempts"],
            ),
            "interval": field(
                duration(positive=True), "The window restarts are counted in.", "10m", d["interval"]
            ),
            "delay": field(duration(), "The wait before a restart.", "15s", d["delay"]),
            "mode": field(
                {"enum": list(groups.RESTART_MODES)},
                "What happens once the attempts are used up.",
                "delay",
                d["mode"],
            ),
        },
    }


def _ingress() -> Schema:
    host = rf"^(?=[^\n]{{1,{MAX_HOST_LENGTH}}}{END})(?:{_LABEL}\.)*(?![0-9]+{END}){_LABEL}{END}"
    path = r"^/[A-Za-z0-9._~!$&()*+,=:@%/-]*" + END
    return {
        "title": "Ingress route",
        "description": "A domain (and path prefix) the cluster's ingress serves from this "
        "group: every node proxies it to that port of every healthy allocation.",
        "type": "object",
        "additionalProperties": False,
        "required": ["host", "port"],
        "properties": {
            "host": field(
                {"type": "string", "pattern": host},
                "The DNS host name (no wildcard).",
                "app.example.com",
                errorMessage="must be a DNS host name like app.example.com",
            ),
            "path": field(
                nullable(
                    {
                        "type": "string",
                        "pattern": path,
                        "maxLength": MAX_INGRESS_PATH,
                        "not": {"pattern": r"/\.\.(/|$)"},
                    }
                ),
                "A path prefix (`/api` serves `/api` and `/api/...`); the longest wins.",
                "/api",
                "/",
                errorMessage="must be a path starting with /",
            ),
            "port": field(
                {"type": "string"},
                "The name of a port of one of the group's tasks.",
                "http",
            ),
            "tls": field(
                {"enum": [*ingress.TLS_MODES, False]},
                "`acme`: HTTPS with a certificate from ACME (HTTP redirects); `off`: plain "
                "HTTP (YAML's bare `off`, read as false, means `off`).",
                "off",
                ingress.TLS_MODES[0],
            ),
        },
        "x-rules": [
            "`port` names a port of one of the group's tasks.",
            "A host and path appear once per group (and belong to one job in the cluster).",
        ],
    }


def group_def() -> Schema:
    return {
        "title": "Group",
        "description": "Tasks placed together: each allocation of the group runs every task "
        "on one node, with one set of ports.",
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "tasks"],
        "properties": group_properties(),
        "x-rules": ["Task names are unique in the group."],
    }


def group_properties() -> Schema:
    return {
        "name": field({"$ref": "#/$defs/dns_label"}, "The group's name, unique in the job.", "app"),
        "count": field(
            {"type": "integer", "minimum": 0, "maximum": groups.MAX_COUNT},
            "How many allocations run (batch: how many runs complete).",
            3,
            1,
        ),
        "tasks": field(
            {"type": "array", "items": {"$ref": "#/$defs/task"}, "minItems": 1},
            "The tasks every allocation runs.",
            [{"name": "web", "image": "nginx:1.27"}],
        ),
        "constraints": field(
            nullable({"type": "array", "items": {"$ref": "#/$defs/constraint"}}),
            "Where the group's allocations may run (added to the job's).",
            [{"operator": "distinct_hosts"}],
            [],
        ),
        "update": field(
            nullable({"$ref": "#/$defs/update"}),
            "How a new version replaces the running one.",
            {"strategy": "canary", "canary": 1, "auto_promote": True},
            dict(groups.DEFAULT_UPDATE),
        ),
        "restart": field(
            nullable({"$ref": "#/$defs/restart"}),
            "What happens when a task exits.",
            {"attempts": 5, "interval": "10m", "delay": "15s", "mode": "delay"},
            dict(groups.DEFAULT_RESTART),
        ),
        "meta": field(
            nullable(string_map(SCALAR)),
            "Free-form strings about the group.",
            {"tier": "frontend"},
            {},
        ),
        "ingress": field(
            nullable(
                {
                    "type": "array",
                    "items": {"$ref": "#/$defs/ingress"},
                    "maxItems": ingress.MAX_ROUTES,
                }
            ),
            "Domains the cluster serves from this group.",
            [{"host": "app.example.com", "path": "/", "port": "http"}],
            [],
        ),
    }


def group_defs() -> dict[str, Schema]:
    """``$defs`` entries for a group and its parts, and constraints."""
    return {
        "group": group_def(),
        "update": _update(),
        "restart": _restart(),
        "ingress": _ingress(),
        "constraint": constraint_def(),
    }


__all__ = ["group_defs", "group_properties"]
