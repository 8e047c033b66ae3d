"""`heroctl operator snapshot save|restore|inspect FILE`: backups of the cluster's state.

`save` writes what `GET /v1/operator/snapshot` answers (a header with the
format, index, cluster id and sha256, then the compressed tables: secrets and
keys inside stay sealed) to FILE, mode 0600, through a temporary file and a
rename. `restore` checks FILE here first (a corrupt, truncated or too new
file goes nowhere), asks unless `--yes`, then `PUT`s it: the cluster replaces
its whole state through the log, every server alike; a snapshot of a cluster
with another cluster key is refused by the servers. `inspect` reads FILE
alone (no server, no token): format, index, cluster id, rows per table, and
whether the checksum holds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from cli.common import Settings, api_options, call, pass_settings
from cli.output import echo, fmt_time, key_values, print_json, table
from cli.verbs import destructive
from domain.snapshot_archive import SnapshotError, decode, describe

__all__ = ["snapshot"]


@click.group()
def snapshot() -> None:
    """Backups of the whole cluster state: save, restore, inspect (management token)."""


def _read(file: str) -> tuple[bytes, dict[str, Any]]:
    """FILE's bytes and what it says of itself; a readable error if it is no good."""
    try:
        data = Path(file).read_bytes()
    except OSError as e:
        raise click.ClickException(f"cannot read {file}: {e.strerror or e}") from None
    try:
        return data, describe(decode(data))
    except SnapshotError as e:
        raise click.ClickException(f"{file}: {e.message} ({e.code})") from None


def _write(file: str, data: bytes) -> None:
    path = Path(file)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise click.ClickException(f"cannot write {file}: {e.strerror or e}") from None


@snapshot.command("save")
@click.argument("file", type=click.Path(dir_okay=False))
@api_options
@pass_settings
def save(settings: Settings, file: str) -> None:
    """Save the cluster's state to FILE (mode 0600)."""
    data = call(settings, lambda api: api.save_snapshot())
    try:
        info = describe(decode(data))
    except SnapshotError as e:
        raise click.ClickException(f"the server's answer is not a snapshot: {e.message}") from None
    _write(file, data)
    if settings.json_output:
        print_json({**info, "file": file, "bytes": len(data)})
        return
    rows = sum(info["tables"].values())
    echo(f"Saved index {info['index']} to {file} ({len(data)} bytes, {rows} rows).")


@snapshot.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@destructive("Replace the whole state of the cluster with {file}?")
@api_options
@pass_settings
def restore(settings: Settings, file: str) -> None:
    """Restore FILE into the running cluster: every job, allocation, secret,
    token and webhook is replaced by the snapshot's (the same cluster key is needed)."""
    data, info = _read(file)
    result = call(settings, lambda api: api.restore_snapshot(data))
    if settings.json_output:
        print_json(result)
        return
    echo(
        f"Restored {file} (index {result['restored_index']} of {result['cluster_id']}): "
        f"the cluster is at index {result['index']}."
    )


@snapshot.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--json", "json_output", is_flag=True, help="Print JSON instead of tables.")
def inspect(file: str, json_output: bool) -> None:
    """Show what FILE holds and whether its checksum is right (reads the file only)."""
    _, info = _read(file)
    if json_output:
        print_json(info)
        return
    key_values(
        [
            ("Format", info["format"]),
            ("Index", info["index"]),
            ("Cluster ID", info["cluster_id"]),
            ("Created", fmt_time(info["created"])),
            ("Server", info["server"]),
            ("Size", f"{info['size']} bytes (compressed)"),
            ("SHA-256", info["sha256"]),
            ("Checksum", "ok"),
        ]
    )
    table(["TABLE", "ROWS"], sorted(info["tables"].items()))
