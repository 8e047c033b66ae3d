"""The JSON Schema of a task: its fields and what depends on its driver, from
the validator's own constants (:mod:`domain.jobspec.tasks`,
:mod:`domain.jobspec.privileges`, :mod:`domain.jobspec.images`); its parts
are in :mod:`domain.jobspec.schema_task_parts`."""

from __future__ import annotations

from typing import Any

from domain.jobspec import images, privileges, tasks
from domain.jobspec.schema_task_parts import (
    COMMAND,
    SECRET_REF,
    check_def,
    port_def,
    registry_auth_def,
    resources_def,
    volume_def,
)
from domain.jobspec.schema_types import END, SCALAR, duration, field, nullable, string_map

Schema = dict[str, Any]


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
        "resources": resources_def(),
        "port": port_def(),
        "check": check_def(),
        "volume": volume_def(),
        "registry_auth": registry_auth_def(),
    }
