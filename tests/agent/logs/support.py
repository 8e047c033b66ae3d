"""Lines to append and a way to compare what comes back, for the log tests."""

from __future__ import annotations

from agent.logs.lines import LogLine


def lines(n: int, start: int = 0, stream: str = "stdout", task: str = "web") -> list[LogLine]:
    return [
        LogLine(1_700_000_000_000_000 + i, stream, task, f"line {i}")
        for i in range(start, start + n)
    ]


def texts(found: list[LogLine]) -> list[str]:
    return [ln.line for ln in found]
