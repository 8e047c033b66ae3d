"""`heroctl logs ALLOC | --job NAME [-f] [-n N]`: what tasks printed.

Logs stay on the node that ran the allocation, and readable after it
stopped (for the cluster's retention); any server fetches them. Lines
printed on stderr by the task go to stderr here, the rest to stdout, so
`2>/dev/null` keeps what the task wrote on stdout. `-f` follows live (SSE):
for a job, every allocation on every node, and those placed later.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from api.client import ApiClient
from cli.common import Settings, api_options, call, pass_settings
from cli.output import short_id


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


async def _follow(
    api: ApiClient,
    alloc: str | None,
    job: str | None,
    params: dict[str, Any],
    *,
    timestamps: bool,
    as_json: bool,
) -> None:
    prefix = job is not None
    async for event, data in api.follow_logs(alloc, job=job, **params):
        if event == "log" and isinstance(data, dict):
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
    raise click.ClickException("the server ended the stream")


@click.command("logs")
@click.argument("alloc", required=False)
@click.option("--job", metavar="NAME", help="Every allocation of this job, merged.")
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
