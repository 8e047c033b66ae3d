"""Printing: raw JSON for machines, rich tables for people, and small formatters.

Formatters are pure (time is passed in) so they are unit-tested on their own.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from domain.durations import format_duration, parse_duration

NONE = "-"


def show(renderable: RenderableType) -> None:
    """Print to the current stdout; piped output is never wrapped, cut or padded."""
    if sys.stdout.isatty():
        Console(markup=False, highlight=False, emoji=False).print(renderable)
        return
    plain = Console(
        file=io.StringIO(),
        width=10_000,
        markup=False,
        highlight=False,
        emoji=False,
        color_system=None,
    )
    with plain.capture() as captured:
        plain.print(renderable)
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def echo(message: str) -> None:
    click.echo(message)


def make_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for h in headers:
        t.add_column(h, no_wrap=True)
    for row in rows:
        t.add_row(*(Text(cell_text(v)) for v in row))
    return t


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    show(make_table(headers, rows))


def heading(title: str) -> None:
    """A blank line, then a section title (between a summary and its tables)."""
    click.echo("")
    click.echo(f"{title}:")


def live_display() -> Live:
    """A rich Live region on the terminal (only used when stdout is a TTY)."""
    console = Console(markup=False, highlight=False, emoji=False)
    return Live(console=console, auto_refresh=False, transient=False)


def key_values(pairs: Iterable[tuple[str, Any]]) -> None:
    t = Table.grid(padding=(0, 3))
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    for key, value in pairs:
        t.add_row(Text(key), Text(cell_text(value)))
    show(t)


# --- formatters -----------------------------------------------------------
def cell_text(value: Any) -> str:
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(cell_text(v) for v in value) or NONE
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def yes_no(value: bool | None) -> str:
    return NONE if value is None else ("yes" if value else "no")


def fmt_time(ms: int | float | None) -> str:
    """Epoch milliseconds (the API's timestamps) -> `2026-04-27 15:00:00 UTC`."""
    if not ms:
        return NONE
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_age(ms: int | float | None, now_ms: int | float) -> str:
    """How long ago an epoch-ms instant was, in the largest sensible unit."""
    if not ms:
        return NONE
    seconds = max(0, int((now_ms - ms) / 1000))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def fmt_duration_ms(ms: int | float | None) -> str:
    """A short duration: `850ms`, `2.5s`, `3m10s`."""
    if ms is None or ms < 0:
        return NONE
    if ms < 1000:
        return f"{int(ms)}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def fmt_seconds(seconds: float | None) -> str:
    """A whole-second span the way people write it (and flags take it): `45s`, `1h30m`."""
    return NONE if seconds is None else format_duration(seconds)


def fmt_until(ms: int | float | None, now_ms: int | float) -> str:
    """How far in the future an epoch-ms instant is (`in 4m30s`, `now`)."""
    if not ms:
        return NONE
    seconds = (ms - now_ms) / 1000
    return "now" if seconds <= 0 else f"in {fmt_seconds(seconds)}"


def short_id(value: str | None, width: int = 8) -> str:
    """Ids are shown by their first 8 characters (commands accept a unique prefix)."""
    return value[:width] if value else NONE


def used_of(used: int | float | None, total: int | float | None, unit: str = "") -> str:
    """`1200/4000 MHz (30%)`; `-` parts when a side is unknown."""
    if used is None and not total:
        return NONE
    u = NONE if used is None else f"{used:g}"
    t = NONE if total is None else f"{total:g}"
    pct = f" ({100 * used / total:.0f}%)" if used is not None and total else ""
    return f"{u}/{t}{' ' + unit if unit else ''}{pct}"


# --- parsing --------------------------------------------------------------
class Duration(click.ParamType):
    """A click option value like `5m` or `30s` (plain numbers are seconds): the
    grammar of domain.durations, the one the API and job specs read too."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


def changed_keys(
    old: dict[str, Any] | None, new: dict[str, Any], ignore: Iterable[str] = ()
) -> list[str]:
    """Top-level fields that differ between two documents (for version history)."""
    if old is None:
        return []
    skip = set(ignore)
    keys = (set(old) | set(new)) - skip
    return sorted(k for k in keys if old.get(k) != new.get(k))
