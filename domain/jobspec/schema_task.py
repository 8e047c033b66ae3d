"""The JSON Schema of a task and what it is made of (resources, ports, the
health check, volumes, registry credentials), from the validator's own
constants (:mod:`domain.jobspec.tasks`, :mod:`domain.jobspec.privileges`,
:mod:`domain.jobspec.images`)."""

from __future__ import annotations

from typing import Any

from domain.jobspec import images, privileges, tasks
from domain.jobspec.schema_types import (
    END,
    SCALAR,
    duration,
    field,
    forbidden,
    nullable,
    string_map,
    words,
)
from domain.jobspec.values import SECRET_REF_RE

Schema = dict[str, Any]

# Inline in the validator (tasks._check, tasks._ports, tasks._resources);
# tests/domain/test_jobspec_schema.py asks the validator for them.
CHECK_KEYS = ("type", "port", "path", "method", "command", "interval", "timeout")
CHECK_TYPE_ALIASES = ("script",)  # read as "command"
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "OPTIONS")
PORT_KEYS = ("name", "to", "static")
RESOURCE_KEYS = ("cpu", "memory")
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


def _port() -> Schema:
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


def _check() -> Schema:
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


def _resources() -> Schema:
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


def _volume() -> Schema:
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


def _registry_auth() -> Schema:
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


def _labels() -> Schema:
    labels = string_map(SCALAR, tasks.LABEL_KEY_RE.pattern)
    labels["propertyNames"] = {
        "pattern": tasks.LABEL_KEY_RE.pattern,
        "not": {"pattern": r"^heroctl\."},
        "errorMessage": "must be a label key (letters, digits, '_', '.', '/', '-'), "
        "not starting with 'heroctl.'",
    }
    return labels


def task_properties() -> Schema:
    """Every task field, in the order the docs list them."""
    env_key = tasks.ENV_NAME_RE.pattern
    return {
        "name": field(
            {"$ref": "#/$defs/dns_label"}, "The task's name, unique in its group.", "web"
        ),
        "driver": field(
            {"enum": list(tasks.DRIVERS)},
            "`docker` (a container from `image`) or `exec` (a process on the node, as "
            "`user`; nodes offer it only when configured to).",
            "docker",
            tasks.DRIVERS[0],
        ),
        "image": field(
            nullable({"type": "string", "pattern": r"^\s*\S+\s*" + END}),
            "docker: the image to run (required); exec: not used.",
            "nginx:1.27",
            errorMessage="must be an image reference without spaces",
        ),
        "pull": field(
            nullable({"enum": list(images.PULL_POLICIES)}),
            "docker: when the node pulls the image: `missing` (when it does not have it), "
            "`always` (at every start, following a moved tag) or `never`.",
            "always",
            images.DEFAULT_PULL,
        ),
        "registry_auth": field(
            nullable({"$ref": "#/$defs/registry_auth"}),
            "docker: credentials for a private registry.",
            {"username": "deploy", "password_secret": "registry_password"},
            None,
        ),
        "command": field(
            nullable(COMMAND),
            "The command: docker: replaces the image's; exec: required. A string is "
            "split like a shell would.",
            ["nginx", "-g", "daemon off;"],
            None,
        ),
        "args": field(
            nullable({"type": "array", "items": {"type": "string"}}),
            "Arguments appended to `command` (docker: to the image's command).",
            ["--port", "8080"],
            None,
        ),
        "env": field(
            nullable(string_map(SCALAR, env_key, "must be an environment variable name")),
            "Environment variables (numbers and booleans become strings).",
            {"LOG_LEVEL": "info"},
            {},
        ),
        "secrets": field(
            nullable(string_map(SECRET_REF, env_key, "must be an environment variable name")),
            "Environment variables from cluster secrets: `name` (the latest version) or "
            "`name@version`; fetched by the node at each start, never stored in the job.",
            {"DB_PASSWORD": "db_password"},
            {},
        ),
        "resources": field(
            nullable({"$ref": "#/$defs/resources"}),
            "CPU and memory reserved per allocation.",
            {"cpu": 500, "memory": 256},
            {"cpu": tasks.DEFAULT_CPU, "memory": tasks.DEFAULT_MEMORY},
        ),
        "ports": field(
            nullable({"type": "array", "items": {"$ref": "#/$defs/port"}}),
            "The ports the task listens on.",
            [{"name": "http", "to": 8080}],
            [],
        ),
        "check": field(
            nullable({"$ref": "#/$defs/check"}),
            "The health check; none: healthy once running.",
            {"type": "http", "port": "http", "path": "/healthz"},
            None,
        ),
        "labels": field(
            nullable(_labels()),
            "Docker labels on the container (keys starting with `heroctl.` are reserved).",
            {"com.example.team": "payments"},
            {},
            **{"x-rules": ["Label keys do not start with `heroctl.`."]},
        ),
        "constraints": field(
            nullable({"type": "array", "items": {"$ref": "#/$defs/constraint"}}),
            "Where this task may run (added to the job's and the group's).",
            [{"attribute": "node.driver.docker", "operator": "is_set"}],
            [],
        ),
        "kill_timeout": field(
            nullable(duration()),
            "How long a stopping task gets between SIGTERM and SIGKILL.",
            "30s",
            tasks.DEFAULT_KILL_TIMEOUT,
        ),
        "user": field(
            nullable(
                {
                    "type": "string",
                    "pattern": privileges.USER_RE.pattern,
                    "errorMessage": "must be a user name or a numeric uid",
                }
            ),
            f"Who the task runs as: a user name or uid. exec: default "
            f"`{privileges.DEFAULT_EXEC_USER}` (another user needs a policy granting "
            "`privileged`); docker: default the image's user.",
            "1000",
            None,
        ),
        "privileged": field(
            nullable({"type": "boolean"}),
            "docker: a privileged container (needs a policy granting it).",
            False,
            False,
        ),
        "volumes": field(
            nullable({"type": "array", "items": {"$ref": "#/$defs/volume"}}),
            "docker: host directories mounted into the container.",
            [{"source": "/srv/data", "target": "/data", "read_only": True}],
            [],
        ),
    }


def task_rules() -> Schema:
    """What depends on the driver: docker needs `image`; exec needs `command`
    and takes neither image, pulls, registry credentials, privileges nor volumes."""
    docker_only = "is used by the docker driver only"
    exec_driver = {"properties": {"driver": {"const": "exec"}}, "required": ["driver"]}
    return {
        "allOf": [
            {
                "description": "exec: `command` is required; `image`, `pull`, "
                "`registry_auth`, `privileged: true` and `volumes` are not used. docker "
                "(the default): `image` is required.",
                "if": exec_driver,
                "then": {
                    "required": ["command"],
                    "errorMessage": "is required for the exec driver",
                    "properties": {
                        "command": {
                            "not": {"type": "null"},
                            "errorMessage": "is required for the exec driver",
                        },
                        "image": {
                            "type": "null",
                            "errorMessage": "is not used by the exec driver",
                        },
                        "privileged": {"enum": [False, None], "errorMessage": docker_only},
                        "volumes": {
                            "anyOf": [{"type": "null"}, {"maxItems": 0}],
                            "errorMessage": docker_only,
                        },
                        "pull": {"type": "null", "errorMessage": docker_only},
                        "registry_auth": {"type": "null", "errorMessage": docker_only},
                    },
                },
                "else": {
                    "required": ["image"],
                    "errorMessage": "is required for the docker driver",
                    "properties": {
                        "image": {
                            "not": {"type": "null"},
                            "errorMessage": "is required for the docker driver",
                        }
                    },
                },
            }
        ]
    }


def task_defs() -> dict[str, Schema]:
    """``$defs`` entries for a task and its parts."""
    props = task_properties()
    task: Schema = {
        "title": "Task",
        "description": "One process or container of an allocation.",
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": props,
        "allOf": [{"$ref": "#/$defs/task_rules"}],
        "x-rules": [
            "A `command` string splits like a shell's (quotes balanced).",
            "A name in `secrets` is not also in `env`.",
            "Port names and `static` host ports are unique across the group's tasks.",
        ],
    }
    return {
        "task": task,
        "task_rules": task_rules(),
        "resources": _resources(),
        "port": _port(),
        "check": _check(),
        "volume": _volume(),
        "registry_auth": _registry_auth(),
    }
