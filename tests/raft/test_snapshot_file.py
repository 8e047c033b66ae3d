"""The snapshot file (raft.snapshot_file): what is written is read back."""

from __future__ import annotations

from pathlib import Path

from raft.fsm import apply_batch
from raft.snapshot_file import read_snapshot, write_snapshot
from raft.state import State


def test_round_trip(tmp_path: Path) -> None:
    state = State()
    apply_batch(state, [{"op": "job.upsert", "ts": 1, "job": {"name": "web"}}], 7)
    path = str(tmp_path / "raft.snapshot")
    write_snapshot(path, state, (b"entry", 7, 2), (b"prev", 6, 2), ["h:2", "h:1"])
    loaded = State()
    last, prev, cluster = read_snapshot(path, loaded)
    assert (last, prev, cluster) == ((b"entry", 7, 2), (b"prev", 6, 2), ["h:1", "h:2"])
    assert loaded.capture() == state.capture()
