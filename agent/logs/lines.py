"""One log line: what the store keeps of it, and its text forms.

Kept apart from the store because three places share them: the store
writes and parses the record format of its segment files, the followers
build lines from what the engine or a process printed (docker timestamps,
overlong lines cut), and the HTTP surface renders them (``to_dict``).

A record is ``<unix µs>\\t<o|e>\\t<task>\\t<line>\\n``: the task and line
may hold tabs (the line is the last field), never a newline.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "MAX_LINE",
    "STREAMS",
    "LogLine",
    "clean_line",
    "format_ts",
    "parse_docker_ts",
    "parse_record",
]

MAX_LINE = 16 * 1024  # characters; longer lines are cut (docker splits at 16 KiB too)
STREAMS = ("stdout", "stderr")
_CODE = {"stdout": "o", "stderr": "e"}
_STREAM = {"o": "stdout", "e": "stderr"}


@dataclass(frozen=True, slots=True)
class LogLine:
    us: int  # unix time in microseconds
    stream: str  # stdout | stderr
    task: str
    line: str

    def record(self) -> str:
        return f"{self.us}\t{_CODE.get(self.stream, 'o')}\t{self.task}\t{self.line}\n"

    def to_dict(self, alloc_id: str) -> dict[str, Any]:
        return {
            "alloc": alloc_id,
            "task": self.task,
            "stream": self.stream,
            "ts": format_ts(self.us),
            "us": self.us,
            "line": self.line,
        }

    @staticmethod
    def from_dict(doc: Mapping[str, Any]) -> LogLine:
        return LogLine(int(doc["us"]), str(doc["stream"]), str(doc["task"]), str(doc["line"]))


def parse_record(raw: bytes) -> LogLine | None:
    try:
        us, code, task, line = raw.decode("utf-8", errors="replace").split("\t", 3)
        return LogLine(int(us), _STREAM.get(code, "stdout"), task, line)
    except ValueError:
        return None  # a torn record (a crash mid-write): skip it


_second_prefix: dict[int, str] = {}


def format_ts(us: int) -> str:
    """RFC 3339 in UTC with microseconds (sorts as text)."""
    sec, frac = divmod(us, 1_000_000)
    prefix = _second_prefix.get(sec)
    if prefix is None:
        if len(_second_prefix) > 4096:
            _second_prefix.clear()
        prefix = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_prefix[sec] = prefix
    return f"{prefix}.{frac:06d}Z"


_epoch_of: dict[str, int] = {}


def parse_docker_ts(text: str) -> int | None:
    """Docker's RFC 3339 nano timestamps (``...T10:26:30.123456789Z``) -> unix µs."""
    if len(text) < 20 or text[10] != "T":
        return None
    base = text[:19]
    sec = _epoch_of.get(base)
    if sec is None:
        try:
            sec = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            return None
        if len(_epoch_of) > 4096:
            _epoch_of.clear()
        _epoch_of[base] = sec
    rest = text[19:]
    frac = 0
    if rest.startswith("."):
        digits = rest[1:].rstrip("Z")
        end = 0
        while end < len(digits) and digits[end].isdigit():
            end += 1
        rest = digits[end:]
        frac = int((digits[:end] + "000000")[:6] or 0)
    elif rest.startswith("Z"):
        rest = rest[1:]
    us = sec * 1_000_000 + frac
    if rest and rest[0] in "+-" and len(rest) >= 6:  # an offset instead of Z
        sign = 1 if rest[0] == "+" else -1
        us -= sign * (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * 1_000_000
    return us


def clean_line(text: str) -> str:
    text = text.rstrip("\r")
    return text if len(text) <= MAX_LINE else text[:MAX_LINE]
