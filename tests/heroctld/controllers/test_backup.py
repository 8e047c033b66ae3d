"""Scheduled backups (heroctld.controllers.backup): files written atomically
with mode 0600, only the newest `keep` kept, none when nothing changed, and a
schedule that goes on from the newest file a new leader finds."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from domain.snapshot_archive import SnapshotSealer, decode
from heroctld.controllers.backup import BackupSettings, backup_loop, backups, write_backup
from raft.backup import Backup
from raft.keys import generate_cluster_key

KEY = generate_cluster_key()


@dataclass
class Identity:
    name: str = "s1"


class FakeReplica:
    """What backup_loop reads of a replica: its identity and its backups."""

    def __init__(self) -> None:
        self.identity = Identity()
        self.index = 10
        self.taken = 0

    async def backup(self) -> Backup:
        self.taken += 1
        return Backup(self.index, b"body-%d" % self.index, {"jobs": 1})


def test_write_is_atomic_private_and_keeps_the_newest(tmp_path: Path) -> None:
    target = tmp_path / "backups"
    now = time.time()
    paths = [write_backup(target, b"x%d" % i, 100 + i, now + i, keep=3) for i in range(5)]
    assert backups(target) == paths[-3:]  # oldest first, by name
    assert sorted(os.listdir(target)) == sorted(p.name for p in paths[-3:])  # no temporaries
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in paths[-3:])
    assert target.stat().st_mode & 0o777 == 0o700
    assert paths[-1].read_bytes() == b"x4"
    (target / "notes.txt").write_text("kept")  # not a backup: never pruned
    write_backup(target, b"y", 200, now + 10, keep=1)
    assert len(backups(target)) == 1 and (target / "notes.txt").exists()


async def test_the_loop_writes_every_interval_and_skips_an_unchanged_state(
    tmp_path: Path,
) -> None:
    replica = FakeReplica()
    settings = BackupSettings(interval=0.1, dir=str(tmp_path / "b"), keep=2)
    task = asyncio.create_task(
        backup_loop(replica, settings, SnapshotSealer(KEY), str(tmp_path))  # type: ignore[arg-type]
    )
    try:
        await wait_for(lambda: len(backups(tmp_path / "b")) == 1)
        await wait_for(lambda: replica.taken >= 3)  # taken, but the state did not change
        assert len(backups(tmp_path / "b")) == 1
        replica.index = 11
        await wait_for(lambda: len(backups(tmp_path / "b")) == 2)
        replica.index = 12

        # The new file is written first, then the oldest pruned (keep): wait for both.
        def kept() -> bool:
            files = backups(tmp_path / "b")
            return files[-1].name.endswith("-12.snap") and len(files) == 2

        await wait_for(kept)
        files = backups(tmp_path / "b")
        assert len(files) == 2 and files[0].name.endswith("-11.snap")
        snap = decode(files[-1].read_bytes(), SnapshotSealer(KEY))
        assert snap.index == 12 and snap.body == b"body-12" and snap.header["server"] == "s1"
    finally:
        task.cancel()


async def test_a_new_leader_waits_out_the_interval_from_the_newest_backup(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "backups"  # the default: <data dir>/backups
    write_backup(directory, b"old", 5, time.time(), keep=3)
    replica = FakeReplica()
    settings = BackupSettings(interval=30.0, keep=3)
    task = asyncio.create_task(
        backup_loop(replica, settings, SnapshotSealer(KEY), str(tmp_path))  # type: ignore[arg-type]
    )
    try:
        await asyncio.sleep(0.2)  # an interval of 30 s: nothing may happen now
        assert replica.taken == 0 and len(backups(directory)) == 1
    finally:
        task.cancel()


async def test_no_interval_no_backups(tmp_path: Path) -> None:
    replica = FakeReplica()
    await backup_loop(replica, BackupSettings(), SnapshotSealer(KEY), str(tmp_path))  # type: ignore[arg-type]
    assert replica.taken == 0 and not (tmp_path / "backups").exists()


async def wait_for(check: object, timeout: float = 5.0) -> None:
    assert callable(check)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.01)
