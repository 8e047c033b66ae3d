"""Query parameters of the logs and metrics endpoints, public and internal
(the servers' and the worker agents' ``/v1/agent/...``): one parser each,
so a relayed request means the same on every side."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from domain import durations
from httpkit.errors import ApiError

DEFAULT_LINES = 100
DEFAULT_STREAM_LINES = 10
MAX_LINES = 100_000
STREAMS = ("stdout", "stderr")
MAX_RANGE = 31 * 86400.0


def flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name)
    return value is not None and value.lower() not in ("false", "0", "no")


# --- logs ------------------------------------------------------------------------------------


def _lines(request: web.Request, default: int | None) -> int | None:
    raw = request.query.get("lines", request.query.get("n"))
    if raw is None or raw == "":
        return default
    if raw.lower() == "all":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", "lines must be a number or 'all'") from None
    if value < 0:
        raise ApiError(400, "invalid_parameter", "lines must not be negative")
    return min(value, MAX_LINES)


def _stream_type(request: web.Request) -> str | None:
    value = request.query.get("type") or None
    if value is not None and value not in STREAMS:
        raise ApiError(400, "invalid_parameter", "type must be stdout or stderr")
    return value


def since_param(request: web.Request) -> int | None:
    """``?since=``: unix microseconds; only lines after it."""
    raw = request.query.get("since")
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", "since must be unix microseconds") from None


@dataclass(frozen=True)
class Filters:
    lines: int | None
    stream: str | None
    task: str | None

    def params(self, since: int | None = None, follow: bool = False) -> dict[str, str]:
        out = {"lines": "all" if self.lines is None else str(self.lines)}
        if self.stream:
            out["type"] = self.stream
        if self.task:
            out["task"] = self.task
        if since is not None:
            out["since"] = str(since)
        if follow:
            out["follow"] = "true"
        return out


def filters(request: web.Request, default_lines: int | None) -> Filters:
    return Filters(
        _lines(request, default_lines), _stream_type(request), request.query.get("task") or None
    )


# --- metrics -----------------------------------------------------------------------------------


def parse_duration(value: str, name: str) -> float:
    """Seconds from a duration (domain.durations' grammar), or a 400 naming ``name``."""
    try:
        return durations.parse_duration(value)
    except durations.DurationError:
        raise ApiError(
            400, "invalid_parameter", f"{name} must look like 30s, 5m, 1h30m or 2d"
        ) from None


def parse_time(value: str | None, now: float, name: str, default: float) -> float:
    """``now``, ``-1h30m`` (a duration before now), unix seconds or RFC 3339 -> unix seconds."""
    if value is None or value == "":
        return default
    value = value.strip()
    if value == "now":
        return now
    if value.startswith("-"):
        return now - parse_duration(value[1:], name)
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ApiError(
            400, "invalid_parameter", f"{name} must be now, -1h, unix seconds or RFC 3339"
        ) from None


def window(request: web.Request) -> tuple[float, float, float | None]:
    """(from, to, step or None) of a metrics query."""
    now = time.time()
    end = parse_time(request.query.get("to"), now, "to", now)
    start = parse_time(request.query.get("from"), now, "from", end - 3600)
    if start >= end:
        raise ApiError(400, "invalid_parameter", "from must be before to")
    if end - start > MAX_RANGE:
        start = end - MAX_RANGE
    raw_step = request.query.get("step")
    step = parse_duration(raw_step, "step") if raw_step else None
    if step is not None and step <= 0:
        raise ApiError(400, "invalid_parameter", "step must be positive")
    return start, end, step
