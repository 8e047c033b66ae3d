"""`heroctl operator`: snapshots (backups and restores: cli.cmd_snapshot), the
keyring (cli.cmd_keyring, added by cli.main), and `backup FILE`, the older
backup (the raft snapshot's msgpack, which cannot be restored: prefer
`operator snapshot save`)."""

from __future__ import annotations

import base64
from pathlib import Path

import click

from cli.cmd_snapshot import snapshot
from cli.common import Settings, api_options, call, pass_settings
from cli.output import echo, print_json


@click.group()
def operator() -> None:
    """Operator tasks: snapshots (backup and restore), the keyring."""


operator.add_command(snapshot)


@operator.command("backup", hidden=True)
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
