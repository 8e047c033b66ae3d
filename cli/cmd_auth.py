"""`heroctl login` / `heroctl logout`, and keeping the saved login fresh.

`login` first settles which CA an https API is verified with (cli.trust:
the cluster's own CA is shown by its fingerprint and pinned on first use),
then asks the API for a JWT (username + password prompt, or `--token` with
an ACL token) and saves `{address, token, expires_at, refresh_token}` to
~/.config/heroctl/credentials.json with mode 0600 (directory 0700). Before
each command, `refresh_saved_login()` swaps a saved JWT that is close to
expiry (or already expired) for a new pair with its refresh token, so a login
lasts as long as the refresh token does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from calendar import timegm
from pathlib import Path
from typing import Any

import click

from cli.common import Settings, api_options, error_text, pass_settings
from cli.credentials import credentials_path
from cli.output import echo, print_json
from cli.trust import establish_trust, pinned_ca
from client import DEFAULT_RETRY, ApiClient, ApiClientError

REFRESH_BEFORE = 3600.0  # seconds before expiry when a saved JWT is refreshed


def save_credentials(data: dict[str, Any], path: Path | None = None) -> Path:
    """Write the credentials file atomically, readable by its owner only."""
    path = path or credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def load_credentials(path: Path | None = None) -> dict[str, Any] | None:
    path = path or credentials_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _epoch(rfc3339: Any) -> float | None:
    if not isinstance(rfc3339, str):
        return None
    try:
        return float(timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def _run(coro: Any, ca_file: str | None) -> Any:
    try:
        return asyncio.run(coro)
    except ApiClientError as e:
        raise click.ClickException(error_text(e, ca_file)) from None


async def _login(address: str, body: dict[str, str], ca_file: str | None) -> dict[str, Any]:
    async with ApiClient(address, ca_file=ca_file, retry=DEFAULT_RETRY) as api:
        return (await api.post("/v1/auth/login", body))[0]


def _store(address: str, answer: dict[str, Any], via: str, ca_file: str | None) -> Path:
    return save_credentials(
        {
            "address": address,
            "token": answer["token"],
            "expires_at": answer.get("expires_at"),
            "refresh_token": answer.get("refresh_token"),
            "via": via,
            "ca_file": ca_file,
        }
    )


def refresh_saved_login(now: float | None = None, path: Path | None = None) -> bool:
    """Refresh the saved JWT if it expires within REFRESH_BEFORE; True if refreshed.

    Quiet on failure: the command then runs with what is saved and the API's
    401 says to log in again.
    """
    creds = load_credentials(path)
    if not creds or not creds.get("refresh_token") or not creds.get("address"):
        return False
    expires = _epoch(creds.get("expires_at"))
    now = time.time() if now is None else now
    if expires is not None and expires - now > REFRESH_BEFORE:
        return False

    async def refresh() -> dict[str, Any]:
        ca_file = creds.get("ca_file") or pinned_ca()
        async with ApiClient(
            creds["address"], timeout=10, ca_file=ca_file, retry=DEFAULT_RETRY
        ) as api:
            return (await api.post("/v1/auth/refresh", {"refresh_token": creds["refresh_token"]}))[
                0
            ]

    try:
        answer = asyncio.run(refresh())
    except ApiClientError:
        return False
    creds.update(
        token=answer["token"],
        expires_at=answer.get("expires_at"),
        refresh_token=answer.get("refresh_token"),
    )
    save_credentials(creds, path)
    return True


@click.command()
@click.option("--username", "-u", help="User name (prompted when neither it nor --token is given).")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from stdin instead of a prompt."
)
@click.option(
    "--ca-fingerprint",
    metavar="SHA256",
    help="Trust the cluster CA only if its fingerprint is this (sha256:HEX), without asking.",
)
@click.option("--yes", "-y", is_flag=True, help="Trust the cluster's CA without asking (scripts).")
@api_options
@pass_settings
def login(
    settings: Settings,
    username: str | None,
    password_stdin: bool,
    ca_fingerprint: str | None,
    yes: bool,
) -> None:
    """Log in and save the credentials (~/.config/heroctl, mode 0600).

    An https API whose certificate the system does not trust shows its CA's
    fingerprint first; once confirmed, the CA is pinned beside the credentials
    and every later command verifies the API with it. With `--token ht_...`
    (or `--token -` to read it from stdin) the ACL token is exchanged for a
    session; otherwise a user name and password are asked.
    """
    try:
        ca_file = establish_trust(settings.address, settings.ca_cert, ca_fingerprint, yes)
    except ValueError as e:  # a malformed --ca-fingerprint
        raise click.BadParameter(str(e), param_hint="--ca-fingerprint") from None
    acl_token = None if username else settings.token
    if acl_token == "-":
        acl_token = sys.stdin.readline().strip()
    if acl_token:
        body = {"acl_token": acl_token}
        via = "acl_token"
    else:
        username = username or click.prompt("Username", default="admin")
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = click.prompt("Password", hide_input=True)
        body = {"username": username, "password": password}
        via = f"user:{username}"
    answer = _run(_login(settings.address, body, ca_file), ca_file)
    path = _store(settings.address, answer, via, ca_file)
    if settings.json_output:
        print_json({"expires_at": answer.get("expires_at"), "credentials": str(path)})
        return
    echo(f"Logged in to {settings.address}; token valid until {answer.get('expires_at')}.")
    echo(f"Credentials saved to {path} (refreshed automatically).")


@click.command()
@api_options
@pass_settings
def logout(settings: Settings) -> None:
    """End the saved login session and delete the saved credentials."""
    path = credentials_path()
    creds = load_credentials(path)
    if creds is None:
        echo("Not logged in.")
        return
    token, address = creds.get("token"), creds.get("address") or settings.address
    ca_file = settings.ca_cert or creds.get("ca_file") or pinned_ca()

    async def end() -> None:
        async with ApiClient(address, token, ca_file=ca_file, retry=DEFAULT_RETRY) as api:
            await api.post("/v1/auth/logout")

    if token and creds.get("refresh_token"):
        with contextlib.suppress(ApiClientError):  # an expired session is over anyway
            asyncio.run(end())
    path.unlink(missing_ok=True)
    echo("Logged out.")
