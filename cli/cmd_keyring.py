"""`heroctl operator keyring list|rotate`: the keys secrets are encrypted under.

`rotate` adds a new primary key (`POST /v1/operator/keyring/rotate`); the
leader then re-encrypts every secret version under it in the background and
drops the old keys once nothing uses them. The command follows that from
`GET /v1/operator/keyring` (each key's count of secret versions) until only
the new key is left, one line per change, unless `--detach`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import click

from cli.common import Settings, api_options, call, pass_settings
from cli.output import Duration, echo, fmt_seconds, print_json, table
from cli.verbs import destructive
from client import ApiClient

__all__ = ["keyring", "old_versions"]

KEYRING = "/v1/operator/keyring"
POLL_INTERVAL = 0.5  # seconds between reads while re-encryption runs


@click.group()
def keyring() -> None:
    """The keyring: the keys secrets are encrypted under (management token)."""


def old_versions(ring: dict[str, Any]) -> int:
    """Secret versions still under a key other than the primary."""
    return sum(k.get("secret_versions") or 0 for k in ring.get("keys") or [] if not k["primary"])


def _done(ring: dict[str, Any]) -> bool:
    """Only the primary key is left: every version moved, the old keys dropped."""
    return all(k["primary"] for k in ring.get("keys") or [])


@keyring.command("list")
@api_options
@pass_settings
def keyring_list(settings: Settings) -> None:
    """List the keys, which is primary, and how many secret versions each holds."""
    ring = call(settings, lambda api: api.get(KEYRING))[0]
    if settings.json_output:
        print_json(ring)
        return
    if not ring.get("keys"):
        echo("No keyring yet (it is made with the first secret).")
        return
    table(
        ["KEY", "PRIMARY", "SECRET VERSIONS", "CREATED"],
        [
            (k["id"], k["primary"], k.get("secret_versions", 0), k.get("create_time"))
            for k in ring["keys"]
        ],
    )
    if (left := old_versions(ring)) > 0:
        echo(f"Re-encrypting: {left} secret version(s) still under an old key.")


@keyring.command("rotate")
@destructive(
    "Rotate the keyring: make a new primary key and re-encrypt every secret under it, "
    "then drop the old keys?"
)
@click.option("--detach", is_flag=True, help="Return once the new key is made.")
@click.option(
    "--timeout",
    type=Duration(),
    default="5m",
    show_default=True,
    metavar="DURATION",
    help="Give up following the re-encryption after this long (exit 1; it goes on).",
)
@api_options
@pass_settings
def keyring_rotate(settings: Settings, detach: bool, timeout: float) -> None:
    """Make a new primary key; follow the re-encryption until the old keys are gone."""
    quiet = settings.json_output

    async def rotate(api: ApiClient) -> tuple[dict[str, Any], dict[str, Any], bool]:
        started = (await api.post(f"{KEYRING}/rotate"))[0]
        if not quiet:
            echo(
                f"New primary key {started['primary']}; "
                f"{started.get('reencrypting', 0)} secret version(s) to re-encrypt."
            )
        if detach:
            return started, started, True
        ring, finished = await follow(api, started, timeout, None if quiet else echo)
        return started, ring, finished

    started, ring, finished = call(settings, rotate)
    if quiet:
        print_json({**ring, "rotated_to": started["primary"], "finished": finished})
    elif detach:
        echo("Re-encryption goes on in the background: `heroctl operator keyring list`.")
    elif finished:
        echo(f"Keyring rotated: every secret is under {ring['primary']}, old keys dropped.")
    if not finished and not detach:
        raise click.ClickException(
            f"the re-encryption did not finish within {fmt_seconds(timeout)} "
            f"({old_versions(ring)} version(s) left); it goes on: "
            "`heroctl operator keyring list`, and the leader's log says why it stalls"
        )


async def follow(
    api: ApiClient, ring: dict[str, Any], timeout: float, say: Any
) -> tuple[dict[str, Any], bool]:
    """Read the keyring until only its primary key is left: (last read, done)."""
    deadline = time.monotonic() + timeout
    shown: tuple[int, int] | None = None
    while True:
        now = (old_versions(ring), len(ring.get("keys") or []))
        if say is not None and now != shown and not _done(ring):
            say(f"re-encrypting: {now[0]} secret version(s) left under {now[1] - 1} old key(s)")
            shown = now
        if _done(ring):
            return ring, True
        if time.monotonic() >= deadline:
            return ring, False
        await asyncio.sleep(POLL_INTERVAL)
        ring = (await api.get(KEYRING))[0]
