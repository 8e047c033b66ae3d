"""The JSON Schema of what a task is made of: its resources, ports, health
check, volumes and registry credentials, and the value shapes tasks share
(secret references, commands), from the validator's own constants
(:mod:`domain.jobspec.tasks`, :mod:`domain.jobspec.images`)."""

from __future__ import annotations

from typing import Any

from domain.jobspec import images, tasks
from domain.jobspec.schema_types import duration, field, forbidden, nullable, words
from domain.jobspec.values import SECRET_REF_RE

__all__ = [
    "COMMAND",
    "SECRET_REF",
    "check_def",
    "port_def",
    "registry_auth_def",
    "resources_def",
    "volume_def",
]

Schema = dict[str, Any]

# Inline in the validator (tasks._check, tasks._resources); the drift tests
# (tests/domain/test_jobspec_schema.py) ask the validator for its fields.
CHECK_TYPE_ALIASES = ("script",)  # read as "command"
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "OPTIONS")
MAX_CPU = 1_000_000
MAX_MEMORY = 100_000_000

SECRET_REF: Schema = {
    "x-type": "secret reference",
    "type": "string",
    "pattern": SECRET_REF_RE.pattern,
    "errorMessage": "must be a secret reference: name[@version]",
}
COMMAND: Schema = {
    "x-type": "command",
    "anyOf": [
        {"type": "string", "pattern": r"\S"},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
    ],
    "errorMessage": "must be a command: a list of arguments, or one string split like a shell",
}


def port_def() -> Schema:
    number = {"type": "integer", "minimum": 1, "maximum": 65535}
    return {
        "title": "Port",
        "description": "A port the task listens on. The node gives every allocation a host "
        "port for it (from the node's `port_range`, or `static`); the task finds it in "
        "`HEROCTL_PORT_<NAME>` (where to listen inside) and `HEROCTL_HOST_PORT_<NAME>`.",
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": field(
                {"type": "string", "pattern": tasks.PORT_LABEL_RE.pattern},
                "The port's name, unique in the group; checks and ingress routes name it.",
                "http",
                errorMessage="must be a port name: letters, digits, '_' and '-', at most 63",
            ),
            "to": field(
                nullable(number),
                "The port inside the container (docker); null: the same as the host port.",
                8080,
                None,
            ),
            "static": field(
                nullable(number),
                "A fixed host port, unique in the group; null: any free port of the node.",
                8443,
                None,
            ),
        },
    }


def check_def() -> Schema:
    methods = words(HTTP_METHODS, ignore_case=True, strip=False)
    types = (*tasks.CHECK_TYPES, *CHECK_TYPE_ALIASES)
    props: Schema = {
        "type": field(
            {"enum": list(types)},
            "`http` (a request to the port, 2xx/3xx passes), `tcp` (a connection) or "
            "`command` (run inside the task, exit 0 passes); `script` is read as `command`.",
            "http",
        ),
        "port": field(
            {"type": "string", "minLength": 1},
            "http and tcp: the name of one of this task's ports.",
            "http",
        ),
        "path": field(
            {"type": "string", "pattern": "^/", "errorMessage": "must start with '/'"},
            "http: the path requested.",
            "/healthz",
            "/",
        ),
        "method": field(
            {"type": "string", "pattern": methods, "errorMessage": "unsupported HTTP method"},
            f"http: the method, one of {', '.join(HTTP_METHODS)} (any case).",
            "GET",
            "GET",
        ),
        "command": field(COMMAND, "command: what to run inside the task.", ["pg_isready", "-q"]),
        "interval": field(
            duration(positive=True),
            "How often the check runs.",
            "10s",
            tasks.DEFAULT_CHECK_INTERVAL,
        ),
        "timeout": field(
            duration(positive=True),
            "How long one run may take before it fails.",
            "2s",
            tasks.DEFAULT_CHECK_TIMEOUT,
        ),
    }
    needs_port = "is required for a {} check"
    return {
        "title": "Check",
        "description": "A task's health check. An allocation is healthy once every check "
        "passed for `update.min_healthy_time`; the ingress routes to passing ones only.",
        "type": "object",
        "additionalProperties": False,
        "required": ["type"],
        "properties": props,
        "allOf": [
            _when_type(
                ("http",),
                required=["port"],
                forbid={"command": "not allowed for a http check"},
                message=needs_port.format("http"),
            ),
            _when_type(
                ("tcp",),
                required=["port"],
                forbid={k: "not allowed for a tcp check" for k in ("path", "method", "command")},
                message=needs_port.format("tcp"),
            ),
            _when_type(
                ("command", *CHECK_TYPE_ALIASES),
                required=["command"],
                forbid={k: "not allowed for a command check" for k in ("port", "path", "method")},
                message="is required for a command check",
            ),
        ],
        "x-rules": ["`port` names a port of this task."],
    }


def _when_type(
    kinds: tuple[str, ...], *, required: list[str], forbid: dict[str, str], message: str
) -> Schema:
    names = " and ".join(f"`{k}`" for k in forbid)
    return {
        "description": f"{' or '.join(kinds)}: `{required[0]}` is required; {names} "
        f"{'is' if len(forbid) == 1 else 'are'} not allowed.",
        "if": {"properties": {"type": {"enum": list(kinds)}}, "required": ["type"]},
        "then": {
            "required": required,
            "properties": {key: forbidden(why) for key, why in forbid.items()},
            "errorMessage": message,
        },
    }


def resources_def() -> Schema:
    return {
        "title": "Resources",
        "description": "What one allocation of the task reserves on its node (the scheduler "
        "places by it; the exec driver enforces it with a cgroup, docker with its limits).",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "cpu": field(
                {"type": "integer", "minimum": 1, "maximum": MAX_CPU},
                "CPU in MHz.",
                500,
                tasks.DEFAULT_CPU,
            ),
            "memory": field(
                {"type": "integer", "minimum": tasks.MIN_MEMORY, "maximum": MAX_MEMORY},
                "Memory in MB (the task is killed above it).",
                256,
                tasks.DEFAULT_MEMORY,
            ),
        },
    }


def volume_def() -> Schema:
    host_path: Schema = {
        "x-type": "absolute path",
        "type": "string",
        "pattern": "^/",
        "allOf": [
            {"not": {"pattern": r"[:\x00\n]"}},
            {"not": {"pattern": r"(^|/)\.{1,2}(/|$)"}},
        ],
        "errorMessage": "must be an absolute path without '.', '..', ':' or control characters",
    }
    return {
        "title": "Volume",
        "description": "A host directory bind-mounted into a docker container; the job's "
        "submitter needs a policy granting that host path. A source that does not exist "
        "is an error, never created.",
        "type": "object",
        "additionalProperties": False,
        "required": ["source", "target"],
        "properties": {
            "source": field(host_path, "The directory on the node.", "/srv/data"),
            "target": field(host_path, "Where it appears in the container.", "/data"),
            "read_only": field({"type": "boolean"}, "Mount it read-only.", False, default=True),
        },
        "x-rules": ["Every `target` is mounted once."],
    }


def registry_auth_def() -> Schema:
    return {
        "title": "Registry credentials",
        "description": "How the node logs in to a private registry to pull the image. The "
        "password is a cluster secret, fetched by the node at each start; never the "
        "password itself.",
        "type": "object",
        "additionalProperties": False,
        "required": sorted(images.REGISTRY_AUTH_KEYS),
        "properties": {
            "password_secret": field(
                SECRET_REF,
                "The secret holding the password: `name` (its latest version) or `name@version`.",
                "registry_password",
            ),
            "username": field(
                {
                    "type": "string",
                    "pattern": images.USERNAME_RE.pattern,
                    "errorMessage": "must be 1-255 printable characters without whitespace or ':'",
                },
                "The registry user.",
                "deploy",
            ),
        },
    }
