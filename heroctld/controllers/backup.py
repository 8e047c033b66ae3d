"""Scheduled backups, on the leader: the state as a backup file every `interval`.

The files are what `GET /v1/operator/snapshot` answers (domain.snapshot_archive),
named `heroctl-<UTC time, ms>-<index>.snap` so their names sort by age, written to
`dir` with mode 0600 through a temporary file, fsync and rename (a crash never
leaves half a backup under a backup's name), and only the newest `keep` are
kept. When the state has not changed since the newest backup (same index), no
new file is written.

The schedule survives a change of leader: a new leader waits until `interval`
after the newest backup in its own `dir` (each server writes to its own
disk: a `dir` on shared storage gathers them in one place).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from domain.snapshot_archive import SnapshotSealer, encode_backup
from raft.replica import Replica

log = logging.getLogger("heroctld.backup")

NAME_RE = re.compile(r"^heroctl-(\d{8}T\d{9}Z)-(\d+)\.snap$")


@dataclass
class BackupSettings:
    """[backup] or HEROCTL_BACKUP_<KEY> (heroctld.controllers.backup): ``interval``:
    time between backups ("1h", seconds; 0, the default: no scheduled backups);
    ``dir``: where they are written (default ``<data-dir>/backups``); ``keep``:
    how many of the newest are kept."""

    interval: float = 0.0
    dir: str = ""
    keep: int = 24


def backups(directory: Path) -> list[Path]:
    """The backup files in `directory`, oldest first."""
    try:
        names = sorted(p.name for p in directory.iterdir() if NAME_RE.match(p.name))
    except FileNotFoundError:
        return []
    return [directory / n for n in names]


def newest(directory: Path) -> tuple[float, int] | None:
    """(modification time, index) of the newest backup in `directory`, if any."""
    files = backups(directory)
    if not files:
        return None
    match = NAME_RE.match(files[-1].name)
    assert match is not None
    try:
        return files[-1].stat().st_mtime, int(match.group(2))
    except FileNotFoundError:
        return None


def write_backup(directory: Path, data: bytes, index: int, now: float, keep: int) -> Path:
    """Write one backup atomically (0600), then remove all but the newest `keep`."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}Z"
    path = directory / f"heroctl-{stamp}-{index}.snap"
    tmp = directory / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself is durable
    finally:
        os.close(dir_fd)
    for old in backups(directory)[: -max(keep, 1)]:
        old.unlink(missing_ok=True)
    return path


async def backup_loop(
    replica: Replica, settings: BackupSettings, sealer: SnapshotSealer, data_dir: str
) -> None:
    """Every `interval` while this server leads: a backup of the state in `dir`."""
    if settings.interval <= 0:
        return
    directory = Path(settings.dir or os.path.join(data_dir, "backups"))
    loop = asyncio.get_running_loop()
    while True:
        last = await loop.run_in_executor(None, newest, directory)
        if last is not None:
            await asyncio.sleep(max(0.0, last[0] + settings.interval - time.time()))
        backup = await replica.backup()
        if last is not None and backup.index == last[1]:
            await asyncio.sleep(settings.interval)  # nothing changed since the newest
            continue
        now = time.time()
        data = encode_backup(sealer, backup, replica.identity.name, int(now * 1000))
        try:
            path = await loop.run_in_executor(
                None, write_backup, directory, data, backup.index, now, settings.keep
            )
        except OSError as e:
            log.error("backup: cannot write to %s: %s", directory, e)
            await asyncio.sleep(min(settings.interval, 60.0))
            continue
        log.info("backup: %s (index %d, %d bytes)", path, backup.index, len(data))
