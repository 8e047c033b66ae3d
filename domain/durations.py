"""The one duration grammar of HeroCtl: the API's `?wait=`, `?from=-1h30m` and
`?step=`, the server's config file and environment, job specs (health-check
intervals, restart delays) and the CLI's flags all read durations here, so a
value one of them accepts means the same everywhere.

The grammar (case-insensitive, surrounding whitespace ignored)::

    duration := number | (number unit)+
    number   := digits ["." digits*] | "." digits
    unit     := "ms" | "s" | "m" | "h" | "d" | "w"

A bare number is seconds; parts add up in any order (``1h30m``, ``90s``,
``1.5h``, ``500ms``, ``2d``, ``1w``). Nothing else: no sign (a caller that
means "before now" reads the ``-`` itself), no spaces inside, no ``1:30``, no
words (which is why this is not pytimeparse2: it would widen the API's
contract). Callers keep their own bounds and their own error envelope; this
module only knows the grammar.
"""

from __future__ import annotations

import re

__all__ = ["EXAMPLES", "UNIT_SECONDS", "DurationError", "format_duration", "parse_duration"]

UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_BARE = re.compile(_NUMBER)
_PART = re.compile(rf"({_NUMBER})(ms|s|m|h|d|w)")  # "ms" before "m"
EXAMPLES = "500ms, 30s, 5m, 1h30m or 2d"  # for messages


class DurationError(ValueError):
    """Not a duration: the message quotes the text and shows the grammar by example."""

    def __init__(self, text: str) -> None:
        super().__init__(f"{text!r} is not a duration (a number of seconds, or like {EXAMPLES})")
        self.text = text


def parse_duration(text: str) -> float:
    """Seconds from ``"90"``, ``"500ms"``, ``"30s"``, ``"1h30m"``, ``"2d"`` ...;
    :class:`DurationError` for anything else."""
    cleaned = text.strip().lower()
    if _BARE.fullmatch(cleaned):
        return float(cleaned)
    seconds, pos = 0.0, 0
    for match in _PART.finditer(cleaned):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(cleaned):
        raise DurationError(text)
    return seconds


def format_duration(seconds: float) -> str:
    """Whole seconds the way people write them, in this grammar: ``45s``, ``5m``,
    ``1h30m``, ``1d1h1m1s`` (rounded to the second; negative is ``0s``)."""
    left = max(0, int(round(seconds)))
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count:
            out += f"{count}{unit}"
    return out or "0s"
