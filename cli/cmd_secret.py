"""`heroctl secret ...`: put, get, list, versions, rollback, rm.

`put` never takes the value from the command line (argv is visible to other
users in process listings and shell history): it reads stdin when stdin is not
a terminal, a file with `--from-file`, or prompts twice without echo.
"""

from __future__ import annotations

import sys
from typing import IO, Any
from urllib.parse import quote

import click

from cli.common import Settings, api_options, call, pass_settings
from cli.output import echo, print_json, table
from cli.verbs import destructive
from cli.waiting import fetch_list, wait_option
from client import ApiClient


@click.group()
def secret() -> None:
    """Secrets: encrypted values for jobs."""


def _path(name: str, tail: str = "") -> str:
    return f"/v1/secrets/{quote(name, safe='')}{tail}"


def read_value(from_file: IO[str] | None, stdin: IO[str] | None = None) -> str:
    """The value to store: a file, piped stdin, or a hidden double prompt."""
    if from_file is not None:
        return from_file.read()
    stdin = stdin or sys.stdin
    if not stdin.isatty():
        value = stdin.read()
        return value[:-1] if value.endswith("\n") else value
    return click.prompt("Value", hide_input=True, confirmation_prompt=True)


@secret.command("put")
@click.argument("name")
@click.option(
    "--from-file",
    type=click.File("r"),
    help="Read the value from this file (exactly, trailing newline included).",
)
@api_options
@pass_settings
def put(settings: Settings, name: str, from_file: IO[str] | None) -> None:
    """Create NAME or add a new version (value from stdin, a file or a prompt)."""
    value = read_value(from_file)

    async def send(api: ApiClient) -> Any:
        return (await api.post("/v1/secrets", {"name": name, "value": value}))[0]

    out = call(settings, send)
    if settings.json_output:
        print_json(out)
        return
    echo(f"Secret '{name}' stored: version {out.get('version')}.")


@secret.command("get")
@click.argument("name")
@click.option("--version", type=click.IntRange(min=1), help="An older version.")
@api_options
@pass_settings
def get(settings: Settings, name: str, version: int | None) -> None:
    """Print the value of NAME (exactly, no newline added)."""

    async def fetch(api: ApiClient) -> Any:
        params = {"version": version} if version else None
        return (await api.get(_path(name), params=params))[0]

    out = call(settings, fetch)
    if settings.json_output:
        print_json(out)
        return
    click.echo(out["value"], nl=False)


@secret.command("list")
@wait_option()
@api_options
@pass_settings
def list_(settings: Settings, wait: float | None) -> None:
    """List secret names and versions (never values)."""
    rows = fetch_list(settings, "/v1/secrets", wait=wait)
    if settings.json_output:
        print_json(rows)
        return
    if not rows:
        echo("No secrets.")
        return
    table(
        ["NAME", "VERSION", "CREATED", "MODIFIED"],
        [(s["name"], s["version"], s.get("create_time"), s.get("modify_time")) for s in rows],
    )


@secret.command("versions")
@click.argument("name")
@api_options
@pass_settings
def versions(settings: Settings, name: str) -> None:
    """List the stored versions of NAME, newest first."""

    async def fetch(api: ApiClient) -> Any:
        return (await api.get(_path(name, "/versions")))[0]

    rows = call(settings, fetch)
    if settings.json_output:
        print_json(rows)
        return
    table(
        ["VERSION", "CREATED", "CURRENT", "ROLLBACK OF"],
        [
            (
                v["version"],
                v.get("create_time"),
                "yes" if v.get("current") else "",
                v.get("rollback_of"),
            )
            for v in rows
        ],
    )


@secret.command("rollback")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@api_options
@pass_settings
def rollback(settings: Settings, name: str, version: int) -> None:
    """Make VERSION's value current again (as a new version)."""

    async def send(api: ApiClient) -> Any:
        return (await api.post(_path(name, "/rollback"), {"version": version}))[0]

    out = call(settings, send)
    if settings.json_output:
        print_json(out)
        return
    echo(f"Secret '{name}' rolled back to version {version}: now version {out.get('version')}.")


@secret.command("rm")
@destructive("Delete secret '{name}' and all its versions? Jobs that read it fail to start.")
@click.argument("name")
@api_options
@pass_settings
def rm(settings: Settings, name: str) -> None:
    """Delete NAME and all its versions."""

    async def send(api: ApiClient) -> Any:
        return (await api.delete(_path(name)))[0]

    out = call(settings, send)
    if settings.json_output:
        print_json(out)
        return
    echo(f"Secret '{name}' deleted.")
