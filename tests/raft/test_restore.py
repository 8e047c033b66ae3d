"""Restoring a backup through the log (raft.fsm_restore, raft.backup) and the
refusal of formats newer than this server reads (raft.formats)."""

from __future__ import annotations

import copy
import hashlib
import zlib
from pathlib import Path
from typing import Any

import msgpack
import pytest

from raft.backup import BodyError, decode_body, take_backup
from raft.commands import decode_batch, encode_batch, encode_command
from raft.fatal import FormatTooNew
from raft.formats import SNAPSHOT_FORMAT
from raft.fsm import apply_batch
from raft.snapshot_file import read_snapshot, write_snapshot
from raft.state import State, pack_snapshot, unpack_snapshot
from tests.raft.event_log import WEB, cmd

NODES = [
    cmd("node.register", node={"id": "n1", "name": "a"}),
    cmd("node.register", node={"id": "n2", "name": "b"}),
]
PLACE = cmd(
    "plan.apply",
    job="web",
    job_modify_index=5,
    job_version=0,
    places=[
        {"id": "a1", "node": "n1", "group": "web", "job_version": 0},
        {"id": "a2", "node": "n2", "group": "web", "job_version": 0},
    ],
)
SERVER = cmd("server.register", name="s1", raft_address="h:1", api_address="http://h")


def built(commands: list[dict[str, Any]], start: int = 2) -> tuple[State, int]:
    """A state with `commands` applied one per raft entry from `start`; (state, next index)."""
    state = State()
    index = start
    for c in copy.deepcopy(commands):
        assert apply_batch(state, [c], index)[0]["ok"], c
        index += 1
    return state, index


def commit(restore_id: str = "r1") -> dict[str, Any]:
    return cmd("state.restore.commit", id=restore_id, format=SNAPSHOT_FORMAT)


def parts(body: bytes, size: int, restore_id: str = "r1") -> list[dict[str, Any]]:
    sha = hashlib.sha256(body).hexdigest()
    chunks = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    return [
        cmd(
            "state.restore",
            id=restore_id,
            part=i,
            parts=len(chunks),
            size=len(body),
            sha256=sha,
            format=SNAPSHOT_FORMAT,
            data=chunk,
        )
        for i, chunk in enumerate(chunks)
    ]


@pytest.fixture
def backup_state() -> State:
    """The cluster that was backed up: two nodes, `web` placed on them (index 2..6)."""
    return built([*NODES, SERVER, cmd("job.upsert", job=WEB), PLACE])[0]


def test_a_restore_in_parts_replaces_the_tables_at_its_commit(backup_state: State) -> None:
    backup = take_backup(backup_state)
    assert backup.counts["jobs"] == 1 and backup.counts["allocations"] == 2
    state, index = built([cmd("job.upsert", job={**WEB, "name": "other"})])
    remembered = set(state.requests)
    pieces = parts(backup.body, 200)
    assert len(pieces) > 2
    (early,) = apply_batch(state, [commit()], index)
    assert (early["status"], early["error"]) == (409, "restore_superseded")  # nothing staged
    for piece in pieces:
        index += 1
        (result,) = apply_batch(state, [piece], index)
        assert result["ok"] and result["received"] == piece["part"] + 1
        assert result["staged"] is (piece is pieces[-1])
        assert set(state.tables["jobs"]) == {"other"}  # nothing changes before the commit
        if piece is pieces[0]:
            (early,) = apply_batch(state, [commit()], index)
            assert (early["status"], early["error"]) == (409, "restore_incomplete")
    (result,) = apply_batch(state, [commit()], index + 1)
    assert result["ok"] and result["restored_index"] == backup.index
    assert set(state.tables["jobs"]) == {"web"}
    assert set(state.tables["allocations"]) == {"a1", "a2"}
    assert state.allocs_of(node="n1")[0]["id"] == "a1"  # derived lookups rebuilt
    assert state.changed_jobs >= {"web", "other"}  # the scheduler looks at both
    assert state.tables["servers"] == {}  # the running cluster's servers, not the backup's
    assert set(state.requests) >= remembered  # and its request memory
    assert state.restoring is None and state.preparing is None and state.restores == 1


def test_indexes_only_grow_after_restoring_a_backup_of_a_higher_index(
    backup_state: State,
) -> None:
    """A brand-new cluster (index 3) restores a backup taken at index 6: the
    restore is at 7 and every later command above it, on every server alike."""
    backup = take_backup(backup_state)
    assert backup.index == 6
    state, index = built([], start=3)
    (*_, result) = apply_batch(state, [*parts(backup.body, 1 << 20), commit()], index)
    assert result["index"] == 7 and state.index == 7
    assert all(i == 7 for i in state.table_index.values())
    (after,) = apply_batch(state, [cmd("job.upsert", job={**WEB, "name": "next"})], index + 1)
    assert after["index"] == 8 and state.tables["jobs"]["next"]["create_index"] == 8
    # a follower loading a raft snapshot taken now goes on with the same indexes
    follower = State()
    follower.load(unpack_snapshot(pack_snapshot(state.capture())))
    (same,) = apply_batch(follower, [cmd("noop")], index + 2)
    assert same["index"] == 9 and follower.index == 9


def test_a_backup_of_a_lower_index_restores_at_the_current_index(backup_state: State) -> None:
    backup = take_backup(backup_state)
    state, _ = built([cmd("noop")] * 10, start=2)
    (_, result) = apply_batch(state, [*parts(backup.body, 1 << 20), commit()], 40)
    assert result["index"] == 40 and state.index_offset == 0


def test_a_body_that_does_not_match_its_sha256_changes_nothing(backup_state: State) -> None:
    body = take_backup(backup_state).body
    state, index = built([cmd("job.upsert", job={**WEB, "name": "other"})])
    before = state.capture()
    (piece,) = parts(body, 1 << 20)
    piece["data"] = body[:-1] + bytes([body[-1] ^ 1])
    (_, result) = apply_batch(state, [piece, commit()], index)
    assert (result["ok"], result["status"], result["error"]) == (False, 400, "snapshot_corrupt")
    after = state.capture()
    assert after["tables"] == before["tables"] and state.restores == 0
    garbage = b"not zlib at all"
    (piece,) = parts(garbage, 1 << 20)
    (_, result) = apply_batch(state, [piece, commit()], index + 1)
    assert result["error"] == "snapshot_invalid" and state.tables == after["tables"]
    assert state.restoring is None and state.preparing is None


def test_parts_of_another_restore_or_out_of_order_are_refused(backup_state: State) -> None:
    body = take_backup(backup_state).body
    state, index = built([])
    first, second = parts(body, 100, "r1"), parts(body, 100, "r2")
    assert apply_batch(state, [first[0]], index)[0]["ok"]
    (skipped,) = apply_batch(state, [first[2]], index + 1)
    assert (skipped["status"], skipped["error"]) == (409, "restore_out_of_order")
    assert apply_batch(state, [second[0]], index + 2)[0]["ok"]  # the newest upload wins
    (old,) = apply_batch(state, [first[1]], index + 3)
    assert (old["status"], old["error"]) == (409, "restore_superseded")
    aborted = apply_batch(state, [cmd("state.restore.abort", id="r2")], index + 4)[0]
    assert aborted["aborted"] is True and state.restoring is None


def test_a_raft_snapshot_in_the_middle_of_a_restore_carries_its_parts(
    backup_state: State, tmp_path: Path
) -> None:
    body = take_backup(backup_state).body
    state, index = built([])
    pieces = parts(body, 300)
    apply_batch(state, pieces[:2], index)
    path = str(tmp_path / "raft.snapshot")
    write_snapshot(path, state, (b"e", index, 1), (b"p", index - 1, 1), ["h:1"])
    follower = State()
    read_snapshot(path, follower)
    assert follower.restoring is not None and len(follower.restoring["chunks"]) == 2
    for n, piece in enumerate(pieces[2:], start=1):
        apply_batch(follower, [piece], index + n)
    (result,) = apply_batch(follower, [commit()], index + len(pieces))
    assert result["ok"] and set(follower.tables["jobs"]) == {"web"}


def test_a_server_without_the_decoding_decodes_at_the_commit(
    backup_state: State, tmp_path: Path
) -> None:
    """Staged completely, then a raft snapshot: the server that loads it never
    started decoding (it is not replicated) and decodes at the commit."""
    body = take_backup(backup_state).body
    state, index = built([])
    apply_batch(state, parts(body, 1 << 20), index)
    assert state.preparing is not None
    follower = State()
    follower.load(unpack_snapshot(pack_snapshot(state.capture())))
    assert follower.preparing is None and follower.restoring["complete"]
    (result,) = apply_batch(follower, [commit()], index + 1)
    assert result["ok"] and set(follower.tables["jobs"]) == {"web"}
    (same,) = apply_batch(state, [commit()], index + 1)
    assert same == result and follower.capture()["tables"] == state.capture()["tables"]


def test_a_backup_holds_the_tables_only() -> None:
    state, _ = built([cmd("job.upsert", job=WEB, rid="req-1")])
    assert "req-1" in state.requests
    snapshot = decode_body(take_backup(state).body)
    assert "requests" not in snapshot and "restoring" not in snapshot
    assert set(snapshot["tables"]["jobs"]) == {"web"}


def test_a_body_that_inflates_beyond_the_limit_is_refused() -> None:
    bomb = zlib.compress(b"\0" * 10_000_000, 9)
    with pytest.raises(BodyError, match="more than 1000000 bytes"):
        decode_body(bomb, max_bytes=1_000_000)
    with pytest.raises(BodyError, match="does not decompress"):
        decode_body(b"\x00\x01\x02")
    with pytest.raises(BodyError, match="not a state snapshot"):
        decode_body(zlib.compress(msgpack.packb({"format": 1, "index": 1}) + b"\xc1"))
    with pytest.raises(BodyError, match="not a heroctl state snapshot"):
        decode_body(zlib.compress(msgpack.packb({"format": 1})))
    with pytest.raises(BodyError, match="empty"):
        decode_body(zlib.compress(b""))
    newer = zlib.compress(msgpack.packb({"format": SNAPSHOT_FORMAT + 1, "index": 1}))
    with pytest.raises(FormatTooNew):
        decode_body(newer)


# --- formats newer than this server reads ---------------------------------------------


def test_a_batch_with_a_command_of_a_newer_format_stops_before_any_of_it_applies() -> None:
    state, index = built([])
    newer = cmd("job.upsert", job={**WEB, "name": "new"}, v=2)
    with pytest.raises(FormatTooNew, match="format 2"):
        apply_batch(state, [cmd("job.upsert", job=WEB), newer], index)
    assert state.tables["jobs"] == {} and state.index == 0


def test_an_entry_of_a_newer_format_is_refused_not_skipped() -> None:
    entry = msgpack.packb([2, [encode_command(cmd("noop"))]], use_bin_type=True)
    with pytest.raises(FormatTooNew, match="entry of format 2"):
        decode_batch(entry)
    assert decode_batch(encode_batch([encode_command(cmd("noop"))]))[0]["op"] == "noop"


def test_a_restore_of_a_newer_snapshot_format_stops_the_server(backup_state: State) -> None:
    state, index = built([])
    (piece,) = parts(take_backup(backup_state).body, 1 << 20)
    apply_batch(state, [piece], index)
    with pytest.raises(FormatTooNew, match="restored snapshot of format 2"):
        apply_batch(state, [{**commit(), "format": SNAPSHOT_FORMAT + 1}], index + 1)
    assert state.restoring is not None and state.tables["jobs"] == {}
    piece["format"] = SNAPSHOT_FORMAT + 1
    with pytest.raises(FormatTooNew):
        apply_batch(state, [piece], index + 1)


def test_a_raft_snapshot_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    newer = State().capture() | {"format": SNAPSHOT_FORMAT + 1}
    with pytest.raises(FormatTooNew, match="snapshot of format 2"):
        unpack_snapshot(pack_snapshot(newer))
    path = tmp_path / "raft.snapshot"
    doc = {"raft": {"last": [b"e", 3, 1], "prev": [b"p", 2, 1], "cluster": []}}
    path.write_bytes(msgpack.packb({**doc, "state": pack_snapshot(newer)}, use_bin_type=True))
    with pytest.raises(FormatTooNew):
        read_snapshot(str(path), State())
    with pytest.raises(ValueError, match="not a heroctl snapshot"):
        unpack_snapshot(msgpack.packb({"format": 0}))
