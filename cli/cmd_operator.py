"""`heroctl operator backup FILE`: save the cluster's whole state (secrets stay encrypted)."""

from __future__ import annotations

import base64
from pathlib import Path

import click

from cli.common import Settings, api_options, call, pass_settings
from cli.output import echo, print_json


@click.group()
def operator() -> None:
    """Operator tasks: backups."""


@operator.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@api_options
@pass_settings
def backup(settings: Settings, file: str) -> None:
    """Write a snapshot of the replicated state to FILE (management token needed)."""
    body = call(settings, lambda api: api.get("/v1/operator/backup"))[0]
    data = base64.b64decode(body["snapshot"])
    path = Path(file)
    path.write_bytes(data)
    path.chmod(0o600)
    if settings.json_output:
        print_json({k: v for k, v in body.items() if k != "snapshot"} | {"file": file})
        return
    echo(
        f"Backup of index {body['index']} written to {file} ({len(data)} bytes, {body['format']})."
    )
