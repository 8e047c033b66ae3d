"""`heroctl logs ALLOC | --job NAME [-f] [-n N]`: what tasks printed.

Logs stay on the node that ran the allocation, and readable after it
stopped (for the cluster's retention); any server fetches them. Lines
printed on stderr by the task go to stderr here, the rest to stdout, so
`2>/dev/null` keeps what the task wrote on stdout. `-f` follows live (SSE):
for a job, every allocation on every node, and those placed later. When
the connection drops (a server restarting, a network blip) `-f` connects
again and resumes after the last line it printed of each allocation
(`?since=`), printing no line twice.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click

from cli.common import Settings, api_options, call, pass_settings
from cli.completion import complete_allocations, complete_jobs
from cli.output import short_id
from client import ApiClient, ApiClientError


def _lines_value(value: str | None) -> int | str | None:
    if value is None:
        return None
    if value.lower() == "all":
        return "all"
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter("must be a number of lines or 'all'") from None
    if n < 0:
        raise click.BadParameter("must not be negative")
    return n


def format_line(doc: dict[str, Any], *, prefix: bool, timestamps: bool) -> str:
    """One log line for people: `[alloc task] ts line` (prefix and time when asked)."""
    parts = []
    if prefix:
        parts.append(f"[{short_id(doc.get('alloc'))} {doc.get('task', '')}]".replace(" ]", "]"))
    if timestamps:
        parts.append(str(doc.get("ts", "")))
    parts.append(str(doc.get("line", "")))
    return " ".join(parts)


def emit(doc: dict[str, Any], *, prefix: bool, timestamps: bool, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(doc, ensure_ascii=False))
        return
    err = doc.get("stream") == "stderr"
    click.echo(format_line(doc, prefix=prefix, timestamps=timestamps), err=err)


class Resume:
    """What a follower has printed, to resume after a dropped connection:
    the last line's time of each allocation and how many lines it printed at
    that very microsecond (a burst often shares one). A new connection asks
    for everything after the earliest of those times (:meth:`since`), and
    :meth:`fresh` drops what was printed already."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[int, int]] = {}  # alloc -> (us, lines printed at us)
        self._skip: dict[str, int] = {}

    def since(self) -> int | None:
        """The ``since`` of the next connection (None: nothing printed yet,
        so the usual backlog repeats nothing)."""
        if not self.last:
            return None
        self._skip = {alloc: n for alloc, (_, n) in self.last.items()}
        return min(us for us, _ in self.last.values()) - 1

    def fresh(self, doc: dict[str, Any]) -> bool:
        """Whether ``doc`` was not printed yet (and note it as printed)."""
        alloc, us = str(doc.get("alloc")), int(doc.get("us") or 0)
        last_us, count = self.last.get(alloc, (0, 0))
        if us < last_us:
            return False
        if us == last_us and self._skip.get(alloc, 0) > 0:
            self._skip[alloc] -= 1
            return False
        self._skip.pop(alloc, None)
        self.last[alloc] = (us, count + 1 if us == last_us else 1)
        return True


RETRY_MIN, RETRY_MAX = 0.5, 5.0  # seconds between reconnections


def _retryable(exc: ApiClientError) -> bool:
    """No answer, or a server that cannot answer now (5xx); not a refusal."""
    return exc.status == 0 or exc.status >= 500


async def _follow(
    api: ApiClient,
    alloc: str | None,
    job: str | None,
    params: dict[str, Any],
    *,
    timestamps: bool,
    as_json: bool,
    max_reconnects: int | None = None,
) -> None:
    prefix = job is not None
    resume = Resume()
    delay = RETRY_MIN
    reconnects = 0
    while True:
        try:
            async for event, data in api.follow_logs(
                alloc, job=job, **params, since=resume.since()
            ):
                delay = RETRY_MIN
                if event == "log" and isinstance(data, dict):
                    if resume.fresh(data):
                        emit(data, prefix=prefix, timestamps=timestamps, as_json=as_json)
                elif event == "error" and isinstance(data, dict):
                    click.echo(
                        f"warning: allocation {short_id(data.get('alloc'))}: {data.get('message')}",
                        err=True,
                    )
                elif event == "dropped" and isinstance(data, dict):
                    click.echo(
                        f"warning: {data.get('lines')} lines of allocation "
                        f"{short_id(data.get('alloc'))} were dropped (this client was too slow)",
                        err=True,
                    )
            reason = "the server ended the stream"
        except ApiClientError as exc:
            if not _retryable(exc):
                raise
            reason = str(exc)
        reconnects += 1
        if max_reconnects is not None and reconnects > max_reconnects:
            raise click.ClickException(reason)
        if delay == RETRY_MIN:  # once per outage
            click.echo(f"warning: {reason}; connecting again", err=True)
        await asyncio.sleep(delay)
        delay = min(RETRY_MAX, delay * 2)


@click.command("logs")
@click.argument("alloc", required=False, shell_complete=complete_allocations)
@click.option(
    "--job",
    metavar="NAME",
    shell_complete=complete_jobs,
    help="Every allocation of this job, merged.",
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines as they come.")
@click.option(
    "-n",
    "--lines",
    "lines",
    metavar="N",
    default=None,
    help="How many of the last lines to show first (default 100, 10 with -f; 'all').",
)
@click.option(
    "--type",
    "stream",
    type=click.Choice(["stdout", "stderr"]),
    help="Only what the tasks wrote on stdout, or on stderr.",
)
@click.option("--task", metavar="TASK", help="Only this task of the group.")
@click.option("-t", "--timestamps", is_flag=True, help="Show when each line was written.")
@api_options
@pass_settings
def logs(
    settings: Settings,
    alloc: str | None,
    job: str | None,
    follow: bool,
    lines: str | None,
    stream: str | None,
    task: str | None,
    timestamps: bool,
) -> None:
    """Show the logs of an allocation (id or unique prefix) or of a job."""
    if (alloc is None) == (job is None):
        raise click.UsageError("give an allocation id, or --job NAME (not both)")
    params = {"lines": _lines_value(lines), "stream": stream, "task": task}
    if follow:
        try:
            call(
                settings,
                lambda api: _follow(
                    api,
                    alloc,
                    job,
                    params,
                    timestamps=timestamps,
                    as_json=settings.json_output,
                ),
            )
        except KeyboardInterrupt:
            sys.exit(0)
        return
    found = call(settings, lambda api: api.logs(alloc, job=job, **params))
    for doc in found:
        emit(doc, prefix=job is not None, timestamps=timestamps, as_json=settings.json_output)
