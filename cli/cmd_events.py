"""`heroctl events [-f]`: the cluster's event stream (job, alloc, node, secret, cert).

`-f` follows with long polls on `GET /v1/events?index=N&wait=...` (the same
stream the SSE endpoint serves), resuming from the index of the last answer,
so a server restart or a reconnect loses nothing the ring still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import click

from cli.common import Settings, api_options, call, pass_settings
from cli.output import cell_text, fmt_time, print_json, table
from client import ApiClient, ApiUnreachable

FOLLOW_WAIT = 50.0  # seconds per long poll (below the client's own timeout)
SHOW_FIRST = ("job", "alloc", "node", "name", "server", "status", "version", "action")


def describe(data: dict[str, Any]) -> str:
    """`job=web version=3 status=running ...`: the fields people look for first."""
    keys = [k for k in SHOW_FIRST if k in data] + sorted(k for k in data if k not in SHOW_FIRST)
    parts = []
    for k in keys:
        v = data[k]
        if v is None or v == "" or (k == "previous_status" and v == data.get("status")):
            continue
        text = cell_text(v)
        parts.append(f"{k}={text if ' ' not in text else json.dumps(text)}")
    return " ".join(parts)


def line(ev: dict[str, Any]) -> str:
    return f"{fmt_time(ev.get('ts'))}  {ev['index']:>7}  {ev['type']:<15} {describe(ev['data'])}"


def _params(topics: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    return {"topic": ",".join(topics) if topics else None, **extra}


async def follow(
    api: ApiClient,
    topics: tuple[str, ...],
    index: int | None,
    emit: Any,
    wait: float = FOLLOW_WAIT,
    max_polls: int | None = None,
) -> None:
    """Long-poll the stream forever (or `max_polls` answers), calling `emit(event)`."""
    if index is None:  # from now on
        _, index = await api.blocking_get("/v1/events", _params(topics))
    polls = 0
    backoff = 0.5
    while max_polls is None or polls < max_polls:
        try:
            events, new_index = await api.blocking_get(
                "/v1/events", _params(topics), index=index, wait=wait
            )
        except ApiUnreachable:
            await asyncio.sleep(backoff)  # a restarting server: keep the index, try again
            backoff = min(backoff * 2, 10.0)
            continue
        backoff = 0.5
        polls += 1
        for ev in events:
            emit(ev)
        index = max(index, new_index)


@click.command("events")
@click.option("-f", "--follow", "following", is_flag=True, help="Keep printing new events.")
@click.option(
    "--topic",
    "topics",
    multiple=True,
    metavar="TOPIC",
    help="Only these: a type (job.failed) or a prefix (job); repeatable or comma-separated.",
)
@click.option(
    "--index",
    type=click.IntRange(min=0),
    default=None,
    help="Start after this raft index (0: everything kept). Default: the latest -n events "
    "(then, with -f, what comes).",
)
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many of the latest events to print (without --index).",
)
@api_options
@pass_settings
def events(
    settings: Settings, following: bool, topics: tuple[str, ...], index: int | None, lines: int
) -> None:
    """Print the cluster's events; with -f, follow them as they happen.

    Types: job.submitted, job.updated, job.deployed, job.failed, alloc.updated,
    alloc.failed, node.updated, node.down, secret.changed (names only),
    cert.renewed.
    """
    topics = tuple(t.strip() for raw in topics for t in raw.split(",") if t.strip())

    def emit(ev: dict[str, Any]) -> None:
        click.echo(json.dumps(ev) if settings.json_output else line(ev))

    async def page(api: ApiClient) -> list[dict[str, Any]]:
        params = _params(topics, index=index if index is not None else 0, limit=10_000)
        body, _ = await api.get("/v1/events", params=params)
        return body if index is not None else body[-lines:]

    if not following:
        rows = call(settings, page)
        if settings.json_output:
            print_json(rows)
            return
        if not rows:
            click.echo("No events.")
            return
        table(
            ["TIME", "INDEX", "TYPE", "DETAILS"],
            [(fmt_time(e.get("ts")), e["index"], e["type"], describe(e["data"])) for e in rows],
        )
        return

    async def run(api: ApiClient) -> None:
        start = index
        if start is None:
            # like `tail -f`: the latest few first, then what comes
            body, headers = await api.get(
                "/v1/events", params=_params(topics, index=0, limit=10_000)
            )
            for ev in body[-lines:]:
                emit(ev)
            start = int(headers.get("X-HeroCtl-Index", 0))
        await follow(api, topics, start, emit)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a follow quietly
        call(settings, run)
