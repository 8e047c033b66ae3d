"""Job spec validation and normalization (issue 4), pure and deterministic.

A submitted job (JSON from the API, JSON/YAML through the CLI) is checked
once, here, and turned into one canonical shape that the FSM stores and the
scheduler, deployments and agents read without re-checking or guessing
defaults. Every error names the exact field that is wrong, as a path such as
``groups[0].tasks[0].resources.memory``, so the API can answer 400 with it.

Two input forms are accepted:

* the full form: ``name``, ``type``, ``groups[].tasks[]``;
* the single-task shorthand: task and group fields (``image``, ``command``,
  ``count``, ...) at the top level, which becomes one group and one task both
  named after the job.

The result is plain dicts/lists/str/int/float (msgpack and JSON friendly);
normalizing a normalized job returns it unchanged. Durations are seconds.
Defaults follow Nomad where the issue does not say otherwise.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "JobSpecError",
    "normalize_job",
    "parse_duration",
    "parse_secret_ref",
    "normalize_constraint",
    "group_resources",
    "SERVER_FIELDS",
]


class JobSpecError(ValueError):
    """A job spec is invalid; ``path`` locates the field, ``message`` says why."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


# --- names and patterns -------------------------------------------------------

DNS_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PORT_LABEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
SECRET_REF_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,127})(?:@([0-9]{1,9}))?$")
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,127}$")

JOB_TYPES = ("service", "batch")
DRIVERS = ("docker", "exec")
RESTART_MODES = ("fail", "delay")
CHECK_TYPES = ("http", "tcp", "command")

# Fields the server owns (set by the FSM); a copy sent back by a client, or
# present because a stored job is re-normalized, is dropped, not rejected.
SERVER_FIELDS = frozenset(
    {
        "id",
        "version",
        "create_index",
        "modify_index",
        "job_modify_index",
        "submit_time",
        "status",
        "index",
        "stop",
    }
)

DEFAULT_PRIORITY = 50
DEFAULT_CPU = 100  # MHz
DEFAULT_MEMORY = 128  # MB
MIN_MEMORY = 10  # MB, as Nomad
MAX_COUNT = 100_000
DEFAULT_RESTART = {"attempts": 3, "interval": 300, "delay": 5, "mode": "fail"}
DEFAULT_UPDATE = {"max_parallel": 1, "min_healthy_time": 10, "healthy_deadline": 300}
DEFAULT_KILL_TIMEOUT = 5
DEFAULT_CHECK_INTERVAL = 10
DEFAULT_CHECK_TIMEOUT = 2

JOB_KEYS = {"name", "type", "priority", "meta", "constraints", "groups"}
GROUP_KEYS = {"name", "count", "constraints", "update", "restart", "meta", "tasks"}
TASK_KEYS = {
    "name",
    "driver",
    "image",
    "command",
    "args",
    "env",
    "secrets",
    "resources",
    "ports",
    "check",
    "labels",
    "constraints",
    "kill_timeout",
}
# Keys that, at the top level, make a job the single-task shorthand.
SHORTHAND_GROUP_KEYS = {"count", "update", "restart"}
SHORTHAND_TASK_KEYS = TASK_KEYS - {"name", "constraints"}


# --- durations ----------------------------------------------------------------

_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any, path: str = "") -> int | float:
    """Seconds from ``10s``, ``5m``, ``1h30m``, ``500ms`` or a bare number.

    Whole seconds come back as int so stored jobs stay tidy; sub-second
    values (``1500ms``) as float.
    """
    if isinstance(value, bool):
        raise JobSpecError(path, "must be a duration such as '10s' or '5m'")
    if isinstance(value, int | float):
        seconds: float = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if not text:
            raise JobSpecError(path, "must be a duration such as '10s' or '5m'")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            pos = 0
            seconds = 0.0
            for match in _DURATION_PART_RE.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                pos = match.end()
            if pos != len(text):
                raise JobSpecError(
                    path, f"invalid duration {value!r}: use e.g. '500ms', '10s', '5m', '1h30m'"
                )
    else:
        raise JobSpecError(path, "must be a duration such as '10s' or '5m'")
    if not math.isfinite(seconds) or seconds < 0:
        raise JobSpecError(path, "must be a non-negative duration")
    if seconds > 10 * 365 * 86400:
        raise JobSpecError(path, "duration is too long (over 10 years)")
    rounded = round(seconds, 3)
    return int(rounded) if rounded == int(rounded) else rounded


def parse_secret_ref(ref: str) -> tuple[str, int | None]:
    """(secret name, version or None for the latest) from ``name[@version]``."""
    match = SECRET_REF_RE.match(ref)
    if not match:
        raise JobSpecError("", f"invalid secret reference {ref!r}: expected name[@version]")
    version = match.group(2)
    return match.group(1), int(version) if version is not None else None


# --- small checkers -----------------------------------------------------------


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise JobSpecError(path, f"must be an object, got {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            raise JobSpecError(path, f"keys must be strings, got {_kind(key)}")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise JobSpecError(path, f"must be a list, got {_kind(value)}")
    return list(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _no_unknown(doc: Mapping[str, Any], allowed: set[str], path: str) -> None:
    for key in doc:
        if key not in allowed:
            hint = ", ".join(sorted(allowed))
            raise JobSpecError(_join(path, key), f"unknown field (known fields: {hint})")


def _int(value: Any, path: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobSpecError(path, f"must be an integer, got {_kind(value)}")
    if isinstance(value, float):
        if not value.is_integer():
            raise JobSpecError(path, f"must be an integer, got {value}")
        value = int(value)
    if minimum is not None and value < minimum:
        raise JobSpecError(path, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise JobSpecError(path, f"must be <= {maximum}, got {value}")
    return value


def _str(value: Any, path: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise JobSpecError(path, f"must be a string, got {_kind(value)}")
    if not allow_empty and not value:
        raise JobSpecError(path, "must not be empty")
    return value


def _scalar_str(value: Any, path: str) -> str:
    """Env values, label values and constraint values: strings; numbers and
    booleans are converted the way a shell or YAML user would expect."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    raise JobSpecError(path, f"must be a string, got {_kind(value)}")


def _dns_label(value: Any, path: str) -> str:
    if value is None:
        raise JobSpecError(path, "is required")
    name = _str(value, path)
    if not DNS_LABEL_RE.match(name):
        raise JobSpecError(
            path,
            f"{name!r} is not a DNS label: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit",
        )
    return name


def _string_map(
    value: Any, path: str, key_check: Callable[[str, str], None] | None = None
) -> dict[str, str]:
    if value is None:
        return {}
    out: dict[str, str] = {}
    for key, item in _mapping(value, path).items():
        if key_check is not None:
            key_check(key, _join(path, key))
        out[key] = _scalar_str(item, _join(path, key))
    return out


def _command(value: Any, path: str) -> list[str] | None:
    """A command is an argv list; a string is split like a shell would
    (``"nginx -g 'daemon off;'"``) so YAML one-liners work too."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise JobSpecError(path, f"cannot split command: {exc}") from None
        if not argv:
            raise JobSpecError(path, "must not be empty")
        return argv
    items = _list(value, path)
    if not items:
        raise JobSpecError(path, "must not be empty")
    return [_str(item, _join(path, i), allow_empty=True) for i, item in enumerate(items)]


# --- constraints ----------------------------------------------------------------

OPERATOR_ALIASES = {
    "=": "=",
    "==": "=",
    "is": "=",
    "!=": "!=",
    "not": "!=",
    "regexp": "regexp",
    "set_contains": "set_contains",
    "set_contains_all": "set_contains",
    "set_contains_any": "set_contains_any",
    "is_set": "is_set",
    "is_not_set": "is_not_set",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
    "distinct_hosts": "distinct_hosts",
}
VALUELESS_OPERATORS = {"is_set", "is_not_set", "distinct_hosts"}
NODE_FIELDS = ("node.id", "node.name", "node.address", "node.status")
NODE_PREFIXES = ("node.label.", "node.attr.", "node.driver.")
# Nomad spellings, accepted and rewritten to ours.
ATTRIBUTE_ALIASES = {
    "node.unique.id": "node.id",
    "node.unique.name": "node.name",
    "attr.unique.network.ip-address": "node.address",
}
ATTRIBUTE_PREFIX_ALIASES = {"meta.": "node.label.", "attr.": "node.attr."}


def _attribute(value: Any, path: str) -> str:
    text = _str(value, path).strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1].strip()
    text = ATTRIBUTE_ALIASES.get(text, text)
    for prefix, ours in ATTRIBUTE_PREFIX_ALIASES.items():
        if text.startswith(prefix):
            text = ours + text[len(prefix) :]
            break
    if text in NODE_FIELDS:
        return text
    for prefix in NODE_PREFIXES:
        if text.startswith(prefix) and len(text) > len(prefix):
            return text
    known = ", ".join([*NODE_FIELDS, *(p + "<key>" for p in NODE_PREFIXES)])
    raise JobSpecError(path, f"unknown attribute {value!r} (known: {known})")


def normalize_constraint(value: Any, path: str) -> dict[str, str]:
    """``{attribute, operator, value}`` with the operator and attribute in
    canonical spelling; regexps are compiled here so a bad one is a 400."""
    doc = _mapping(value, path)
    _no_unknown(doc, {"attribute", "operator", "value"}, path)
    raw_op = doc.get("operator", "=")
    op_path = _join(path, "operator")
    if not isinstance(raw_op, str) or raw_op.strip().lower() not in OPERATOR_ALIASES:
        known = ", ".join(sorted(set(OPERATOR_ALIASES)))
        raise JobSpecError(op_path, f"unknown operator {raw_op!r} (known: {known})")
    op = OPERATOR_ALIASES[raw_op.strip().lower()]
    if op == "distinct_hosts":
        if "value" in doc and _scalar_str(doc["value"], _join(path, "value")) not in (
            "true",
            "",
        ):
            raise JobSpecError(_join(path, "value"), "distinct_hosts takes no value")
        return {"attribute": "", "operator": op, "value": ""}
    if "attribute" not in doc:
        raise JobSpecError(_join(path, "attribute"), "is required")
    attribute = _attribute(doc["attribute"], _join(path, "attribute"))
    if op in VALUELESS_OPERATORS:
        return {"attribute": attribute, "operator": op, "value": ""}
    if "value" not in doc or doc["value"] is None:
        raise JobSpecError(_join(path, "value"), f"is required for operator {op!r}")
    val = _scalar_str(doc["value"], _join(path, "value"))
    if op == "regexp":
        try:
            re.compile(val)
        except re.error as exc:
            raise JobSpecError(_join(path, "value"), f"invalid regexp: {exc}") from None
    if op in ("set_contains", "set_contains_any") and not [v for v in val.split(",") if v.strip()]:
        raise JobSpecError(_join(path, "value"), "must list at least one item")
    return {"attribute": attribute, "operator": op, "value": val}


def _constraints(value: Any, path: str) -> list[dict[str, str]]:
    if value is None:
        return []
    return [normalize_constraint(c, _join(path, i)) for i, c in enumerate(_list(value, path))]


# --- tasks ------------------------------------------------------------------------


def _resources(value: Any, path: str) -> dict[str, int]:
    doc = _mapping(value if value is not None else {}, path)
    _no_unknown(doc, {"cpu", "memory"}, path)
    cpu = _int(doc.get("cpu", DEFAULT_CPU), _join(path, "cpu"), minimum=1, maximum=1_000_000)
    memory = _int(
        doc.get("memory", DEFAULT_MEMORY),
        _join(path, "memory"),
        minimum=MIN_MEMORY,
        maximum=100_000_000,
    )
    return {"cpu": cpu, "memory": memory}


def _ports(value: Any, path: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    out: list[dict[str, Any]] = []
    for i, item in enumerate(_list(value, path)):
        p = _join(path, i)
        doc = _mapping(item, p)
        _no_unknown(doc, {"name", "to", "static"}, p)
        if "name" not in doc:
            raise JobSpecError(_join(p, "name"), "is required")
        name = _str(doc["name"], _join(p, "name"))
        if not PORT_LABEL_RE.match(name):
            raise JobSpecError(
                _join(p, "name"),
                f"{name!r} is not a valid port name: letters, digits, '_' and '-', at most 63",
            )
        to = doc.get("to")
        static = doc.get("static")
        out.append(
            {
                "name": name,
                "to": None if to is None else _int(to, _join(p, "to"), minimum=1, maximum=65535),
                "static": None
                if static is None
                else _int(static, _join(p, "static"), minimum=1, maximum=65535),
            }
        )
    return out


def _check(value: Any, path: str, port_names: set[str]) -> dict[str, Any] | None:
    if value is None:
        return None
    doc = _mapping(value, path)
    _no_unknown(doc, {"type", "port", "path", "method", "command", "interval", "timeout"}, path)
    kind = doc.get("type")
    if kind == "script":
        kind = "command"
    if kind not in CHECK_TYPES:
        raise JobSpecError(
            _join(path, "type"), f"must be one of {', '.join(CHECK_TYPES)}, got {kind!r}"
        )
    interval = parse_duration(doc.get("interval", DEFAULT_CHECK_INTERVAL), _join(path, "interval"))
    timeout = parse_duration(doc.get("timeout", DEFAULT_CHECK_TIMEOUT), _join(path, "timeout"))
    if interval <= 0:
        raise JobSpecError(_join(path, "interval"), "must be greater than zero")
    if timeout <= 0:
        raise JobSpecError(_join(path, "timeout"), "must be greater than zero")
    out: dict[str, Any] = {"type": kind, "interval": interval, "timeout": timeout}
    if kind in ("http", "tcp"):
        if "command" in doc:
            raise JobSpecError(_join(path, "command"), f"not allowed for a {kind} check")
        port = _str(doc.get("port"), _join(path, "port")) if "port" in doc else None
        if port is None:
            raise JobSpecError(_join(path, "port"), f"is required for a {kind} check")
        if port not in port_names:
            have = ", ".join(sorted(port_names)) or "none"
            raise JobSpecError(
                _join(path, "port"), f"names no port of this task ({port!r}; ports: {have})"
            )
        out["port"] = port
    if kind == "http":
        check_path = _str(doc.get("path", "/"), _join(path, "path"))
        if not check_path.startswith("/"):
            raise JobSpecError(_join(path, "path"), "must start with '/'")
        method = _str(doc.get("method", "GET"), _join(path, "method")).upper()
        if method not in ("GET", "HEAD", "POST", "PUT", "OPTIONS"):
            raise JobSpecError(_join(path, "method"), f"unsupported HTTP method {method!r}")
        out["path"] = check_path
        out["method"] = method
    elif kind == "tcp":
        for extra in ("path", "method"):
            if extra in doc:
                raise JobSpecError(_join(path, extra), "not allowed for a tcp check")
    else:
        for extra in ("port", "path", "method"):
            if extra in doc:
                raise JobSpecError(_join(path, extra), "not allowed for a command check")
        if "command" not in doc:
            raise JobSpecError(_join(path, "command"), "is required for a command check")
        out["command"] = _command(doc["command"], _join(path, "command"))
    return out


def _env_key(key: str, path: str) -> None:
    if not ENV_NAME_RE.match(key):
        raise JobSpecError(path, f"{key!r} is not a valid environment variable name")


def _label_key(key: str, path: str) -> None:
    if not LABEL_KEY_RE.match(key):
        raise JobSpecError(path, f"{key!r} is not a valid label key")
    if key.startswith("heroctl."):
        raise JobSpecError(path, "labels starting with 'heroctl.' are reserved")


def _secrets(value: Any, path: str) -> dict[str, str]:
    out = _string_map(value, path, _env_key)
    for key, ref in out.items():
        if not SECRET_REF_RE.match(ref):
            raise JobSpecError(
                _join(path, key), f"invalid secret reference {ref!r}: expected name[@version]"
            )
    return out


def _task(value: Any, path: str) -> dict[str, Any]:
    doc = _mapping(value, path)
    _no_unknown(doc, TASK_KEYS, path)
    name = _dns_label(doc.get("name"), _join(path, "name"))
    driver = doc.get("driver", "docker")
    if driver not in DRIVERS:
        raise JobSpecError(
            _join(path, "driver"), f"must be one of {', '.join(DRIVERS)}, got {driver!r}"
        )
    image = doc.get("image")
    if image is not None:
        image = _str(image, _join(path, "image")).strip()
        if not image or any(c.isspace() for c in image):
            raise JobSpecError(_join(path, "image"), f"invalid image reference {image!r}")
    command = _command(doc.get("command"), _join(path, "command"))
    args = doc.get("args")
    if args is not None:
        extra = [
            _str(a, _join(_join(path, "args"), i), allow_empty=True)
            for i, a in enumerate(_list(args, _join(path, "args")))
        ]
        if extra:
            if command is None and driver == "exec":
                raise JobSpecError(_join(path, "args"), "needs a command")
            command = [*(command or []), *extra]
    if driver == "docker" and image is None:
        raise JobSpecError(_join(path, "image"), "is required for the docker driver")
    if driver == "exec":
        if image is not None:
            raise JobSpecError(_join(path, "image"), "is not used by the exec driver")
        if command is None:
            raise JobSpecError(_join(path, "command"), "is required for the exec driver")
    env = _string_map(doc.get("env"), _join(path, "env"), _env_key)
    secrets = _secrets(doc.get("secrets"), _join(path, "secrets"))
    for key in secrets:
        if key in env:
            raise JobSpecError(
                _join(_join(path, "secrets"), key), "is also set in env: set it in one place"
            )
    ports = _ports(doc.get("ports"), _join(path, "ports"))
    return {
        "name": name,
        "driver": driver,
        "image": image,
        "command": command,
        "env": env,
        "secrets": secrets,
        "resources": _resources(doc.get("resources"), _join(path, "resources")),
        "ports": ports,
        "check": _check(doc.get("check"), _join(path, "check"), {p["name"] for p in ports}),
        "labels": _string_map(doc.get("labels"), _join(path, "labels"), _label_key),
        "constraints": _constraints(doc.get("constraints"), _join(path, "constraints")),
        "kill_timeout": parse_duration(
            doc.get("kill_timeout", DEFAULT_KILL_TIMEOUT), _join(path, "kill_timeout")
        ),
    }


# --- groups -----------------------------------------------------------------------


def _restart(value: Any, path: str) -> dict[str, Any]:
    doc = _mapping(value if value is not None else {}, path)
    _no_unknown(doc, set(DEFAULT_RESTART), path)
    mode = doc.get("mode", DEFAULT_RESTART["mode"])
    if mode not in RESTART_MODES:
        raise JobSpecError(
            _join(path, "mode"), f"must be one of {', '.join(RESTART_MODES)}, got {mode!r}"
        )
    interval = parse_duration(
        doc.get("interval", DEFAULT_RESTART["interval"]), _join(path, "interval")
    )
    if interval <= 0:
        raise JobSpecError(_join(path, "interval"), "must be greater than zero")
    return {
        "attempts": _int(
            doc.get("attempts", DEFAULT_RESTART["attempts"]),
            _join(path, "attempts"),
            minimum=0,
            maximum=10_000,
        ),
        "interval": interval,
        "delay": parse_duration(doc.get("delay", DEFAULT_RESTART["delay"]), _join(path, "delay")),
        "mode": mode,
    }


def _update(value: Any, path: str) -> dict[str, Any]:
    doc = _mapping(value if value is not None else {}, path)
    _no_unknown(doc, set(DEFAULT_UPDATE), path)
    update = {
        "max_parallel": _int(
            doc.get("max_parallel", DEFAULT_UPDATE["max_parallel"]),
            _join(path, "max_parallel"),
            minimum=0,
            maximum=MAX_COUNT,
        ),
        "min_healthy_time": parse_duration(
            doc.get("min_healthy_time", DEFAULT_UPDATE["min_healthy_time"]),
            _join(path, "min_healthy_time"),
        ),
        "healthy_deadline": parse_duration(
            doc.get("healthy_deadline", DEFAULT_UPDATE["healthy_deadline"]),
            _join(path, "healthy_deadline"),
        ),
    }
    if update["healthy_deadline"] <= update["min_healthy_time"]:
        raise JobSpecError(
            _join(path, "healthy_deadline"),
            f"must be longer than min_healthy_time ({update['min_healthy_time']}s)",
        )
    return update


def _group(value: Any, path: str) -> dict[str, Any]:
    doc = _mapping(value, path)
    _no_unknown(doc, GROUP_KEYS, path)
    name = _dns_label(doc.get("name"), _join(path, "name"))
    if "tasks" not in doc:
        raise JobSpecError(_join(path, "tasks"), "is required: a group runs at least one task")
    raw_tasks = _list(doc["tasks"], _join(path, "tasks"))
    if not raw_tasks:
        raise JobSpecError(_join(path, "tasks"), "must list at least one task")
    tasks = [_task(t, _join(_join(path, "tasks"), i)) for i, t in enumerate(raw_tasks)]
    seen_tasks: set[str] = set()
    seen_ports: set[str] = set()
    seen_static: set[int] = set()
    for i, task in enumerate(tasks):
        tpath = _join(_join(path, "tasks"), i)
        if task["name"] in seen_tasks:
            raise JobSpecError(_join(tpath, "name"), f"duplicate task name {task['name']!r}")
        seen_tasks.add(task["name"])
        # Ports are allocated per group (one address per allocation), so
        # their names and static host ports must be unique across tasks.
        for j, port in enumerate(task["ports"]):
            ppath = _join(_join(tpath, "ports"), j)
            if port["name"] in seen_ports:
                raise JobSpecError(_join(ppath, "name"), f"duplicate port name {port['name']!r}")
            seen_ports.add(port["name"])
            if port["static"] is not None:
                if port["static"] in seen_static:
                    raise JobSpecError(
                        _join(ppath, "static"), f"static port {port['static']} is used twice"
                    )
                seen_static.add(port["static"])
    return {
        "name": name,
        "count": _int(doc.get("count", 1), _join(path, "count"), minimum=0, maximum=MAX_COUNT),
        "constraints": _constraints(doc.get("constraints"), _join(path, "constraints")),
        "update": _update(doc.get("update"), _join(path, "update")),
        "restart": _restart(doc.get("restart"), _join(path, "restart")),
        "meta": _string_map(doc.get("meta"), _join(path, "meta")),
        "tasks": tasks,
    }


def _expand_shorthand(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level task/group fields -> one group and one task named after the job."""
    shorthand = [k for k in doc if k in SHORTHAND_TASK_KEYS or k in SHORTHAND_GROUP_KEYS]
    if not shorthand:
        return dict(doc)
    if "groups" in doc:
        raise JobSpecError(
            shorthand[0], "task fields at the top level cannot be combined with 'groups'"
        )
    name = doc.get("name")
    task = {k: doc[k] for k in doc if k in SHORTHAND_TASK_KEYS}
    group = {k: doc[k] for k in doc if k in SHORTHAND_GROUP_KEYS}
    task["name"] = name
    group["name"] = name
    group["tasks"] = [task]
    out = {k: v for k, v in doc.items() if k not in task and k not in group}
    out["name"] = name
    out["groups"] = [group]
    return out


def normalize_job(doc: Any) -> dict[str, Any]:
    """The canonical job from a submitted spec, or :class:`JobSpecError`.

    Server-owned fields (:data:`SERVER_FIELDS`) are dropped; the FSM sets them.
    Errors in a shorthand job name the field as the user wrote it (``image``,
    not ``groups[0].tasks[0].image``).
    """
    raw = _mapping(doc, "")
    raw = {k: v for k, v in raw.items() if k not in SERVER_FIELDS}
    name = _dns_label(raw.get("name"), "name")
    expanded = _expand_shorthand(raw)
    try:
        return _normalize_full(expanded, name)
    except JobSpecError as exc:
        if "groups" in raw:
            raise
        path = exc.path
        for prefix in ("groups[0].tasks[0].", "groups[0]."):
            if path.startswith(prefix):
                path = path[len(prefix) :]
                break
        raise JobSpecError(path, exc.message) from None


def _normalize_full(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    _no_unknown(raw, JOB_KEYS, "")
    kind = raw.get("type", "service")
    if kind not in JOB_TYPES:
        raise JobSpecError("type", f"must be one of {', '.join(JOB_TYPES)}, got {kind!r}")
    # A job without groups (nor top-level task fields) is a stored definition
    # that runs nothing yet; an explicit empty list is a mistake.
    raw_groups = _list(raw["groups"], "groups") if "groups" in raw else []
    if "groups" in raw and not raw_groups:
        raise JobSpecError("groups", "must list at least one group")
    groups = [_group(g, _join("groups", i)) for i, g in enumerate(raw_groups)]
    seen: set[str] = set()
    for i, group in enumerate(groups):
        if group["name"] in seen:
            raise JobSpecError(f"groups[{i}].name", f"duplicate group name {group['name']!r}")
        seen.add(group["name"])
    return {
        "name": name,
        "type": kind,
        "priority": _int(raw.get("priority", DEFAULT_PRIORITY), "priority", minimum=1, maximum=100),
        "meta": _string_map(raw.get("meta"), "meta"),
        "constraints": _constraints(raw.get("constraints"), "constraints"),
        "groups": groups,
    }


def group_resources(group: Mapping[str, Any]) -> tuple[int, int]:
    """(cpu MHz, memory MB) one allocation of a normalized group asks for."""
    cpu = sum(t["resources"]["cpu"] for t in group["tasks"])
    memory = sum(t["resources"]["memory"] for t in group["tasks"])
    return cpu, memory
