"""`heroctl completion bash|zsh|fish`, and completing names from the API.

The script is click's own shell completion: the shell runs `heroctl` with
`_HEROCTL_COMPLETE` set, and click answers with the words that fit. Job,
node and allocation names come from the API (`complete_jobs`,
`complete_nodes`, `complete_allocations` are `shell_complete` callbacks),
asked with the address and credentials the command line would use (flags,
`HEROCTL_ADDR`/`HEROCTL_TOKEN`, the saved login). They fail silently: a
server that is down, slow (over `LOOKUP_TIMEOUT`) or refuses the token
completes nothing, never prints an error into the shell.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class

from cli.common import Settings
from client import ApiClient

__all__ = ["complete_allocations", "complete_jobs", "complete_nodes", "completion"]

COMPLETE_VAR = "_HEROCTL_COMPLETE"
LOOKUP_TIMEOUT = 3.0  # seconds; a completion that waits longer than this is no help
SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash: eval "$(heroctl completion bash)"   (in ~/.bashrc; bash 4.4 or later)
    zsh:  eval "$(heroctl completion zsh)"    (in ~/.zshrc)
    fish: heroctl completion fish > ~/.config/fish/completions/heroctl.fish

    Commands, options and values complete; so do job, node and allocation
    names, asked from the API with your saved login or $HEROCTL_TOKEN.
    """
    cls = get_completion_class(shell)
    assert cls is not None  # the choice is one click supports
    root = ctx.find_root().command
    click.echo(cls(root, {}, "heroctl", COMPLETE_VAR).source())


def _settings(ctx: click.Context) -> Settings:
    """The connection settings the command being completed would use."""
    root = ctx.find_root().params
    settings = Settings(
        address=root.get("address") or Settings.address,
        token=root.get("token") or None,
        ca_cert=root.get("ca_cert") or None,
    )
    # A subcommand's own --address/--token/--ca-cert (cli.common.api_options).
    given = ctx.find_object(Settings)
    if given is not None:
        for attr in ("address", "token", "ca_cert"):
            if getattr(given, attr) not in (None, Settings.address):
                setattr(settings, attr, getattr(given, attr))
    return settings


def _lookup(ctx: click.Context, fn: Callable[[ApiClient], Awaitable[Any]]) -> Any:
    """fn's answer from the API, or None on any failure whatsoever."""
    with contextlib.suppress(Exception):
        settings = _settings(ctx)
        token = settings.resolved_token()
        ca_file = settings.resolved_ca()

        async def ask() -> Any:
            async with ApiClient(
                settings.address, token, timeout=LOOKUP_TIMEOUT, ca_file=ca_file
            ) as api:
                return await asyncio.wait_for(fn(api), LOOKUP_TIMEOUT)

        return asyncio.run(ask())
    return None


def _items(pairs: list[tuple[str, str | None]], incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(v, help=h) for v, h in pairs if v and v.startswith(incomplete)]


def complete_jobs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Job names from `GET /v1/jobs`."""
    jobs = _lookup(ctx, lambda api: api.list_jobs()) or []
    return _items([(j.get("name", ""), j.get("status")) for j in jobs], incomplete)


def complete_nodes(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Node names from `GET /v1/nodes` (commands take a name, an id or its prefix)."""
    nodes = _lookup(ctx, lambda api: api.list_nodes()) or []
    return _items([(n.get("name", ""), n.get("status")) for n in nodes], incomplete)


def complete_allocations(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Allocation ids from `GET /v1/allocations` (the 8 characters lists show,
    the whole id once that prefix is typed), with their job and status."""
    allocs = _lookup(ctx, lambda api: api.list_allocations()) or []
    pairs = []
    for a in allocs:
        alloc_id = str(a.get("id") or "")
        value = alloc_id if len(incomplete) >= 8 else alloc_id[:8]
        pairs.append((value, f"{a.get('name') or a.get('job') or ''} {a.get('status') or ''}"))
    return _items(pairs, incomplete)
