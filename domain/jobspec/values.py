"""Checkers for the values a job spec is made of: objects, lists, integers,
strings, DNS names, commands, durations and secret references.

Each takes the value and the ``path`` of the field it came from, and raises
:class:`JobSpecError` naming that path.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from domain import durations
from domain.jobspec.errors import JobSpecError

DNS_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SECRET_REF_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,127})(?:@([0-9]{1,9}))?$")

# --- durations ----------------------------------------------------------------

MAX_DURATION = 10 * 365 * 86400  # seconds
_DURATIONS: dict[str, int | float] = {}  # text -> seconds: a job repeats a few
_DURATIONS_MAX = 512


def parse_duration(value: Any, path: str = "") -> int | float:
    """Seconds from a number or a duration text (:mod:`domain.durations`:
    ``10s``, ``5m``, ``1h30m``, ``500ms``, a bare number).

    Whole seconds come back as int so stored jobs stay tidy; sub-second
    values (``1500ms``) as float.
    """
    if type(value) is not str:
        if type(value) is int and 0 <= value <= MAX_DURATION:  # the defaults, mostly
            return value
        return _parse_duration(value, path)
    seconds = _DURATIONS.get(value)
    if seconds is None:
        seconds = _parse_duration(value, path)
        if len(_DURATIONS) < _DURATIONS_MAX:
            _DURATIONS[value] = seconds
    return seconds


def _parse_duration(value: Any, path: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise JobSpecError(path, "must be a duration such as '10s' or '5m'")
    if isinstance(value, str):
        try:
            seconds = durations.parse_duration(value)
        except durations.DurationError as exc:
            raise JobSpecError(path, str(exc)) from None
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise JobSpecError(path, "must be a non-negative duration")
    if seconds > MAX_DURATION:
        raise JobSpecError(path, "duration is too long (over 10 years)")
    rounded = round(seconds, 3)
    return int(rounded) if rounded == int(rounded) else rounded


def check_secret_ref(ref: str, path: str) -> re.Match[str]:
    """The match of a ``name[@version]`` secret reference, or an error at ``path``."""
    match = SECRET_REF_RE.fullmatch(ref)
    if not match:
        raise JobSpecError(path, f"invalid secret reference {ref!r}: expected name[@version]")
    return match


def parse_secret_ref(ref: str) -> tuple[str, int | None]:
    """(secret name, version or None for the latest) from ``name[@version]``."""
    match = check_secret_ref(ref, "")
    version = match.group(2)
    return match.group(1), int(version) if version is not None else None


# --- small checkers -----------------------------------------------------------


def join_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def as_mapping(value: Any, path: str) -> Mapping[str, Any]:
    if type(value) is not dict and not isinstance(value, Mapping):  # dict: the fast common case
        raise JobSpecError(path, f"must be an object, got {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            raise JobSpecError(path, f"keys must be strings, got {_kind(key)}")
    return value


def as_list(value: Any, path: str) -> list[Any]:
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


def no_unknown_fields(doc: Mapping[str, Any], allowed: set[str], path: str) -> None:
    for key in doc:
        if key not in allowed:
            hint = ", ".join(sorted(allowed))
            raise JobSpecError(join_path(path, key), f"unknown field (known fields: {hint})")


def as_object(
    value: Any, path: str, allowed: set[str], *, optional: bool = False
) -> Mapping[str, Any]:
    """An object (see :func:`as_mapping`) with no field outside ``allowed``;
    when ``optional``, None stands for an empty one."""
    doc = as_mapping({} if optional and value is None else value, path)
    no_unknown_fields(doc, allowed, path)
    return doc


def as_int(value: Any, path: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
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


def one_of(value: Any, choices: tuple[str, ...], path: str) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise JobSpecError(path, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def positive(seconds: int | float, path: str) -> int | float:
    """``seconds`` (a parsed duration) if it is greater than zero."""
    if seconds <= 0:
        raise JobSpecError(path, "must be greater than zero")
    return seconds


def as_str(value: Any, path: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise JobSpecError(path, f"must be a string, got {_kind(value)}")
    if not allow_empty and not value:
        raise JobSpecError(path, "must not be empty")
    return value


def scalar_str(value: Any, path: str) -> str:
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


def dns_label(value: Any, path: str) -> str:
    if value is None:
        raise JobSpecError(path, "is required")
    name = as_str(value, path)
    if not DNS_LABEL_RE.fullmatch(name):
        raise JobSpecError(
            path,
            f"{name!r} is not a DNS label: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit",
        )
    return name


def string_map(
    value: Any, path: str, key_check: Callable[[str, str], None] | None = None
) -> dict[str, str]:
    if value is None:
        return {}
    out: dict[str, str] = {}
    for key, item in as_mapping(value, path).items():
        if key_check is not None:
            key_check(key, join_path(path, key))
        out[key] = scalar_str(item, join_path(path, key))
    return out


def command_argv(value: Any, path: str) -> list[str] | None:
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
    items = as_list(value, path)
    if not items:
        raise JobSpecError(path, "must not be empty")
    return [as_str(item, join_path(path, i), allow_empty=True) for i, item in enumerate(items)]
