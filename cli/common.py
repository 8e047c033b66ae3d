"""What every command shares: connection settings, common options, calling the API.

A command module defines a click group (or command) whose commands are
decorated with `@api_options` and call the API through `call(settings, fn)`;
errors become `Error: ...` on stderr with exit status 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from cli.credentials import CredentialsError, read_saved_token
from cli.trust import CA_ENV, pinned_ca, untrusted_text
from client import (
    DEFAULT_ADDRESS,
    DEFAULT_RETRY,
    ApiClient,
    ApiClientError,
    ApiUnreachable,
    CertificateUntrusted,
)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

ADDRESS_ENV = "HEROCTL_ADDR"
TOKEN_ENV = "HEROCTL_TOKEN"


@dataclass
class Settings:
    """Resolved once per invocation; subcommand options override the group's."""

    address: str = DEFAULT_ADDRESS  # one server, or several comma-separated (failover)
    token: str | None = None
    json_output: bool = False
    ca_cert: str | None = None  # --ca-cert / $HEROCTL_CACERT

    def resolved_ca(self) -> str | None:
        """The CA file https servers are verified with (cli.trust: flag, pinned, system)."""
        return self.ca_cert or pinned_ca()

    def resolved_token(self) -> str | None:
        if self.token:
            return self.token
        try:
            return read_saved_token()
        except CredentialsError as e:
            raise click.ClickException(str(e)) from None


def _override(attr: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None and value is not False:
            setattr(ctx.ensure_object(Settings), attr, value)
        return value

    return callback


def api_options(fn: F) -> F:
    """`--json`, `--address` and `--token` accepted after the command name too."""
    options = [
        click.option(
            "--json",
            "json_output",
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_override("json_output"),
            help="Print the API's JSON instead of tables.",
        ),
        click.option(
            "--address",
            "--addr",
            metavar="URL[,URL...]",
            default=None,
            expose_value=False,
            callback=_override("address"),
            help=f"API address (overrides the global option and ${ADDRESS_ENV}).",
        ),
        click.option(
            "--token",
            default=None,
            expose_value=False,
            callback=_override("token"),
            help=f"Bearer token (overrides the global option and ${TOKEN_ENV}).",
        ),
        click.option(
            "--ca-cert",
            metavar="FILE",
            default=None,
            expose_value=False,
            callback=_override("ca_cert"),
            help=f"CA certificate to verify the API with (overrides ${CA_ENV}).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


pass_settings = click.make_pass_decorator(Settings, ensure=True)


def error_text(e: ApiClientError, ca_file: str | None = None) -> str:
    """One line for people: the message, then the code and request id to quote."""
    if isinstance(e, CertificateUntrusted):
        return untrusted_text(e.address, e.reason, ca_file)
    if isinstance(e, ApiUnreachable):
        return (
            f"could not reach the HeroCtl API at {e.address}: {e.reason} "
            f"(is heroctld running there? set --address or ${ADDRESS_ENV})"
        )
    return str(e)


def call(settings: Settings, fn: Callable[[ApiClient], Awaitable[T]]) -> T:
    """Run one API conversation; any API failure exits 1 with a readable line.

    The servers of `settings.address` are failed over between, and 429/503
    answers retried within `client.DEFAULT_RETRY`'s bounds (client.retry)."""
    token = settings.resolved_token()
    ca_file = settings.resolved_ca()

    async def conversation() -> T:
        async with ApiClient(settings.address, token, ca_file=ca_file, retry=DEFAULT_RETRY) as api:
            return await fn(api)

    try:
        return asyncio.run(conversation())
    except ApiClientError as e:
        raise click.ClickException(error_text(e, ca_file)) from None
