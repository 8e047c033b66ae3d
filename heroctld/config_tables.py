"""Reading the config file's TOML tables (and their environment overrides) into
settings dataclasses, strictly.

A key nobody reads, or a value of the wrong type, is a mistake the operator
should hear about when the server starts, not discover later as a setting
that silently kept its default. So every table is read against the list of
its keys, each with a reader that converts and bounds its value; an unknown
key is refused with the closest valid one (``did you mean "bind"?``), a bad
value with where it came from (``[gc] keep_per_group`` or the
``HEROCTL_GC_KEEP_PER_GROUP`` variable) and what was expected. Durations are
read with the grammar the API, job specs and the CLI share
(:mod:`domain.durations`).

The server's own tables and keys are in :mod:`heroctld.config`.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from domain.durations import EXAMPLES, parse_duration

DEFAULT_SOURCE = "the config file"  # what messages call a config given as data
Reader = Callable[[Any], Any]  # a raw value -> the setting, or ValueError saying why

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 10**6,
    "mb": 10**6,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gib": 2**30,
}


class ConfigError(ValueError):
    pass


def shown(value: Any) -> str:
    """A value the way the config file spells it: ``"x"``, ``5``, ``true``."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _expected(what: str, value: Any) -> ValueError:
    return ValueError(f"expected {what}, got {shown(value)}")


def _at_least(number: float, minimum: float, unit: str = "") -> None:
    if number < minimum:
        raise ValueError(f"must be at least {minimum:g}{unit}, got {number:g}{unit}")


# --- readers: a raw value (TOML, or an environment variable's text) -> a setting ------


def integer(minimum: int = 0, maximum: int | None = None) -> Reader:
    def read(value: Any) -> int:
        try:
            if not (isinstance(value, str) or (_is_number(value) and float(value).is_integer())):
                raise ValueError
            number = int(value)
        except ValueError:
            raise _expected("an integer", value) from None
        _at_least(number, minimum)
        if maximum is not None and number > maximum:
            raise ValueError(f"must be at most {maximum}, got {number}")
        return number

    return read


def number(minimum: float = 0.0) -> Reader:
    def read(value: Any) -> float:
        try:
            if not (isinstance(value, str) or _is_number(value)):
                raise ValueError
            result = float(value)
            if not math.isfinite(result):
                raise ValueError
        except ValueError:
            raise _expected("a number", value) from None
        _at_least(result, minimum)
        return result

    return read


_DURATION = f"a duration (seconds, or like {EXAMPLES})"


def duration(minimum: float = 0.0) -> Reader:
    """Seconds: a TOML number, or a text in domain.durations' grammar (``"90"``,
    ``"500ms"``, ``"1h30m"``)."""

    def read(value: Any) -> float:
        try:
            if isinstance(value, str):
                seconds = parse_duration(value)  # DurationError is a ValueError
            elif _is_number(value):
                seconds = float(value)
            else:
                raise ValueError
        except ValueError:
            raise _expected(_DURATION, value) from None
        _at_least(seconds, minimum, "s")
        return seconds

    return read


def size(value: Any) -> int:
    """Bytes: a TOML number, or a text such as ``"512KiB"``, ``"10MiB"``, ``"1GB"``."""
    if _is_number(value):
        count = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        try:
            count = float(digits) * _SIZE_UNITS[text[len(digits) :]]
        except (KeyError, ValueError):
            raise _expected("a size (bytes, or like 512KiB, 10MiB, 1GB)", value) from None
    _at_least(count, 0)
    return int(count)


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise _expected("a string", value)
    return value.strip()


def boolean(value: Any) -> bool:
    """A TOML boolean (or, from the environment, true/false/1/0)."""
    if isinstance(value, bool):
        return value
    if value in (0, 1) or (isinstance(value, str) and value.strip().lower() in ("0", "1")):
        return bool(int(value))
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _expected("true or false", value)


def one_of(*choices: str) -> Reader:
    def read(value: Any) -> str:
        if value not in choices:
            raise _expected(f"one of {', '.join(choices)}", value)
        return str(value)

    return read


# --- tables ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A ``[name]`` table of the config file read into a ``settings`` dataclass:
    a reader for each of its fields; ``HEROCTL_<NAME>_<KEY>`` overrides a key."""

    name: str
    settings: type
    keys: Mapping[str, Reader]

    def __post_init__(self) -> None:
        if set(self.keys) != {f.name for f in fields(self.settings)}:
            raise TypeError(f"[{self.name}]: a reader for each field of {self.settings.__name__}")

    def read(self, table: Any, env: Mapping[str, str], source: str) -> Any:
        """The settings from ``table`` (the parsed TOML, dashes allowed for
        underscores) and then the environment; ConfigError on any mistake."""
        if not isinstance(table, dict):
            raise ConfigError(f"[{self.name}] in {source}: expected a table, got {shown(table)}")
        raw: dict[str, tuple[str, Any]] = {}
        for key, value in table.items():
            name = key.replace("-", "_")
            if name not in self.keys:
                raise unknown_key(f"{self.name}.{key}", self.paths(), source)
            raw[name] = (f"[{self.name}] {name}", value)
        for name in self.keys:
            variable = f"HEROCTL_{self.name.upper()}_{name.upper()}"
            if env.get(variable):
                raw[name] = (variable, env[variable])
        settings = self.settings()
        for name, (where, value) in raw.items():
            setattr(settings, name, read_value(self.keys[name], value, where))
        return settings

    def paths(self) -> list[str]:
        return [f"{self.name}.{key}" for key in self.keys]


def read_value(reader: Reader, value: Any, where: str) -> Any:
    try:
        return reader(value)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None


def unknown_key(path: str, known: Iterable[str], source: str) -> ConfigError:
    """``unknown key "bnd" in heroctl.toml: did you mean "bind"?``: the valid
    dotted path whose last part is closest to the unknown one's (or starts
    with it), else the valid keys of its table. ``known`` may hold keys of other tables too: a
    key put in the wrong table is found there."""
    table, _, name = path.rpartition(".")
    by_name: dict[str, str] = {}
    for candidate in known:
        by_name.setdefault(candidate.rpartition(".")[2], candidate)
    name = name.replace("-", "_")
    close = difflib.get_close_matches(name, list(by_name), n=1)
    close = close or sorted(k for k in by_name if k.startswith(name))[:1]  # "keep": keep_per_group
    if close:
        return ConfigError(f'unknown key "{path}" in {source}: did you mean "{by_name[close[0]]}"?')
    valid = sorted(k for k in known if k.rpartition(".")[0] == table)
    return ConfigError(f'unknown key "{path}" in {source} (valid keys: {", ".join(valid)})')
