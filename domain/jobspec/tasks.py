"""One task of a group: driver, image or command, env, secrets, resources,
ports, health check, labels, constraints, what it asks of the node (user,
privileged, volumes: :mod:`domain.jobspec.privileges`) and how its image is
pulled (pull, registry_auth: :mod:`domain.jobspec.images`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from domain.jobspec.constraints import constraint_list
from domain.jobspec.errors import JobSpecError
from domain.jobspec.images import IMAGE_KEYS, image_fields
from domain.jobspec.privileges import DEFAULT_EXEC_USER, as_bool, user_name, volumes
from domain.jobspec.values import (
    as_int,
    as_list,
    as_object,
    as_str,
    check_secret_ref,
    command_argv,
    dns_label,
    join_path,
    one_of,
    parse_duration,
    positive,
    string_map,
)

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PORT_LABEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,127}$")
WHITESPACE_RE = re.compile(r"\s")

DRIVERS = ("docker", "exec")
CHECK_TYPES = ("http", "tcp", "command")

DEFAULT_CPU = 100  # MHz
DEFAULT_MEMORY = 128  # MB
MIN_MEMORY = 10  # MB, as Nomad
DEFAULT_KILL_TIMEOUT = 5
DEFAULT_CHECK_INTERVAL = 10
DEFAULT_CHECK_TIMEOUT = 2

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
    "user",
    "privileged",
    "volumes",
    *IMAGE_KEYS,
}


def _resources(value: Any, path: str) -> dict[str, int]:
    doc = as_object(value, path, {"cpu", "memory"})
    cpu = as_int(doc.get("cpu", DEFAULT_CPU), join_path(path, "cpu"), minimum=1, maximum=1_000_000)
    memory = as_int(
        doc.get("memory", DEFAULT_MEMORY),
        join_path(path, "memory"),
        minimum=MIN_MEMORY,
        maximum=100_000_000,
    )
    return {"cpu": cpu, "memory": memory}


def _ports(value: Any, path: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    out: list[dict[str, Any]] = []
    for i, item in enumerate(as_list(value, path)):
        p = join_path(path, i)
        doc = as_object(item, p, {"name", "to", "static"})
        if "name" not in doc:
            raise JobSpecError(join_path(p, "name"), "is required")
        name = as_str(doc["name"], join_path(p, "name"))
        if not PORT_LABEL_RE.fullmatch(name):
            raise JobSpecError(
                join_path(p, "name"),
                f"{name!r} is not a valid port name: letters, digits, '_' and '-', at most 63",
            )
        out.append(
            {
                "name": name,
                "to": _port_number(doc.get("to"), join_path(p, "to")),
                "static": _port_number(doc.get("static"), join_path(p, "static")),
            }
        )
    return out


def _port_number(value: Any, path: str) -> int | None:
    return None if value is None else as_int(value, path, minimum=1, maximum=65535)


def _check(value: Any, path: str, port_names: set[str]) -> dict[str, Any] | None:
    if value is None:
        return None
    doc = as_object(
        value, path, {"type", "port", "path", "method", "command", "interval", "timeout"}
    )
    kind = doc.get("type")
    if kind == "script":
        kind = "command"
    one_of(kind, CHECK_TYPES, join_path(path, "type"))
    interval = parse_duration(
        doc.get("interval", DEFAULT_CHECK_INTERVAL), join_path(path, "interval")
    )
    timeout = parse_duration(doc.get("timeout", DEFAULT_CHECK_TIMEOUT), join_path(path, "timeout"))
    positive(interval, join_path(path, "interval"))
    positive(timeout, join_path(path, "timeout"))
    out: dict[str, Any] = {"type": kind, "interval": interval, "timeout": timeout}
    if kind in ("http", "tcp"):
        _not_allowed(doc, ("command",), kind, path)
        port = as_str(doc.get("port"), join_path(path, "port")) if "port" in doc else None
        if port is None:
            raise JobSpecError(join_path(path, "port"), f"is required for a {kind} check")
        if port not in port_names:
            have = ", ".join(sorted(port_names)) or "none"
            raise JobSpecError(
                join_path(path, "port"), f"names no port of this task ({port!r}; ports: {have})"
            )
        out["port"] = port
    if kind == "http":
        check_path = as_str(doc.get("path", "/"), join_path(path, "path"))
        if not check_path.startswith("/"):
            raise JobSpecError(join_path(path, "path"), "must start with '/'")
        method = as_str(doc.get("method", "GET"), join_path(path, "method")).upper()
        if method not in ("GET", "HEAD", "POST", "PUT", "OPTIONS"):
            raise JobSpecError(join_path(path, "method"), f"unsupported HTTP method {method!r}")
        out["path"] = check_path
        out["method"] = method
    elif kind == "tcp":
        _not_allowed(doc, ("path", "method"), kind, path)
    else:
        _not_allowed(doc, ("port", "path", "method"), kind, path)
        if "command" not in doc:
            raise JobSpecError(join_path(path, "command"), "is required for a command check")
        out["command"] = command_argv(doc["command"], join_path(path, "command"))
    return out


def _not_allowed(doc: Mapping[str, Any], fields: tuple[str, ...], kind: str, path: str) -> None:
    for extra in fields:
        if extra in doc:
            raise JobSpecError(join_path(path, extra), f"not allowed for a {kind} check")


def _env_key(key: str, path: str) -> None:
    if not ENV_NAME_RE.fullmatch(key):
        raise JobSpecError(path, f"{key!r} is not a valid environment variable name")


def _label_key(key: str, path: str) -> None:
    if not LABEL_KEY_RE.fullmatch(key):
        raise JobSpecError(path, f"{key!r} is not a valid label key")
    if key.startswith("heroctl."):
        raise JobSpecError(path, "labels starting with 'heroctl.' are reserved")


def _secrets(value: Any, path: str) -> dict[str, str]:
    out = string_map(value, path, _env_key)
    for key, ref in out.items():
        check_secret_ref(ref, join_path(path, key))
    return out


def _present(
    doc: Mapping[str, Any], key: str, path: str, check: Any, default: Any, *args: Any
) -> Any:
    """``check(value, path of key, *args)`` for a field that is set (not null);
    ``default`` for one that is not, without building its path."""
    value = doc.get(key)
    if value is None:
        return default
    return check(value, join_path(path, key), *args)


def normalize_task(value: Any, path: str) -> dict[str, Any]:
    doc = as_object(value, path, TASK_KEYS)
    name = dns_label(doc.get("name"), join_path(path, "name"))
    driver = one_of(doc.get("driver", "docker"), DRIVERS, join_path(path, "driver"))
    image = doc.get("image")
    if image is not None:
        image = as_str(image, join_path(path, "image")).strip()
        if not image or WHITESPACE_RE.search(image):
            raise JobSpecError(join_path(path, "image"), f"invalid image reference {image!r}")
    command = _present(doc, "command", path, command_argv, None)
    args = doc.get("args")
    if args is not None:
        extra = [
            as_str(a, join_path(join_path(path, "args"), i), allow_empty=True)
            for i, a in enumerate(as_list(args, join_path(path, "args")))
        ]
        if extra:
            if command is None and driver == "exec":
                raise JobSpecError(join_path(path, "args"), "needs a command")
            command = [*(command or []), *extra]
    if driver == "docker" and image is None:
        raise JobSpecError(join_path(path, "image"), "is required for the docker driver")
    if driver == "exec":
        if image is not None:
            raise JobSpecError(join_path(path, "image"), "is not used by the exec driver")
        if command is None:
            raise JobSpecError(join_path(path, "command"), "is required for the exec driver")
    env = _present(doc, "env", path, string_map, {}, _env_key)
    secrets = _present(doc, "secrets", path, _secrets, {})
    for key in secrets:
        if key in env:
            raise JobSpecError(
                join_path(join_path(path, "secrets"), key),
                "is also set in env: set it in one place",
            )
    ports = _present(doc, "ports", path, _ports, [])
    privileged = _present(doc, "privileged", path, as_bool, False)
    mounts = _present(doc, "volumes", path, volumes, [])
    if driver == "exec":
        for key, used in (("privileged", privileged), ("volumes", mounts)):
            if used:
                raise JobSpecError(join_path(path, key), "is used by the docker driver only")
    return {
        "name": name,
        "driver": driver,
        "image": image,
        "command": command,
        "env": env,
        "secrets": secrets,
        "resources": _present(doc, "resources", path, _resources, None)
        or {"cpu": DEFAULT_CPU, "memory": DEFAULT_MEMORY},
        "ports": ports,
        "check": _present(doc, "check", path, _check, None, {p["name"] for p in ports}),
        "labels": _present(doc, "labels", path, string_map, {}, _label_key),
        "constraints": _present(doc, "constraints", path, constraint_list, []),
        "kill_timeout": _present(doc, "kill_timeout", path, parse_duration, DEFAULT_KILL_TIMEOUT),
        # exec: nobody unless set; docker: the image's user unless set
        "user": _present(
            doc, "user", path, user_name, DEFAULT_EXEC_USER if driver == "exec" else None
        ),
        "privileged": privileged,
        "volumes": mounts,
        **image_fields(doc, path, driver),
    }
