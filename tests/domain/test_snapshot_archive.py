"""The backup file (domain.snapshot_archive) and the check of its sealed
values (domain.snapshot_seals): every damaged, too new or foreign file is
refused with the code that says why."""

from __future__ import annotations

import hashlib
import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.crypto import KeyMaterial
from domain.pki import CaKeys
from domain.snapshot_archive import (
    MAGIC,
    PREFIX,
    SnapshotError,
    SnapshotSealer,
    cluster_id,
    decode,
    describe,
    encode,
)
from domain.snapshot_seals import check_sealed
from raft.formats import SNAPSHOT_FORMAT
from raft.keys import generate_cluster_key

KEY = generate_cluster_key()
OTHER = generate_cluster_key()
SEALER = SnapshotSealer(KEY)
BODY = bytes(range(256)) * 40


def archive(body: bytes = BODY, sealer: SnapshotSealer = SEALER, **over: object) -> bytes:
    fields: dict[str, object] = {
        "index": 42,
        "body": body,
        "tables": {"jobs": 3, "secrets": 1},
        "server": "s1",
        "created_ms": 1_700_000_000_000,
    }
    fields.update(over)
    return encode(sealer, **fields)  # type: ignore[arg-type]


def code_of(data: bytes, sealer: SnapshotSealer | None = SEALER) -> str:
    with pytest.raises(SnapshotError) as info:
        decode(data, sealer)
    return info.value.code


def test_round_trip_and_what_inspect_shows() -> None:
    snap = decode(archive(), SEALER)
    assert snap.body == BODY and snap.index == 42 and snap.format == SNAPSHOT_FORMAT
    info = describe(snap)
    assert info["cluster_id"] == cluster_id(KEY) == SEALER.cluster_id
    assert info["sha256"] == hashlib.sha256(BODY).hexdigest() and info["checksum_ok"]
    assert info["tables"] == {"jobs": 3, "secrets": 1} and info["server"] == "s1"
    assert "mac" not in info
    assert decode(archive()).index == 42  # without the key: the checks that need none


def test_the_same_cluster_key_gives_the_same_id() -> None:
    assert cluster_id(KEY) == SnapshotSealer(KEY).cluster_id != cluster_id(OTHER)
    assert cluster_id(KEY).startswith("hc-") and KEY not in cluster_id(KEY)


def test_truncated_anywhere() -> None:
    data = archive()
    assert code_of(b"") == "snapshot_invalid"
    for cut in (3, len(MAGIC), PREFIX - 1, PREFIX + 5, len(data) - len(BODY) // 2, len(data) - 1):
        assert code_of(data[:cut]) == "snapshot_truncated", cut


def test_corrupt_body_header_or_trailing_bytes() -> None:
    data = bytearray(archive())
    data[-100] ^= 0x01
    assert code_of(bytes(data)) == "snapshot_corrupt"
    assert code_of(archive() + b"x") == "snapshot_corrupt"
    garbage = MAGIC + struct.pack(">I", 4) + b"\xc1\xc1\xc1\xc1" + BODY
    assert code_of(garbage) == "snapshot_corrupt"
    huge = MAGIC + struct.pack(">I", 2**31) + BODY
    assert code_of(huge) == "snapshot_corrupt"
    assert code_of(b"PK\x03\x04" + BODY) == "snapshot_invalid"


def test_a_newer_format_is_refused_before_anything_else() -> None:
    data = archive(snapshot_format=SNAPSHOT_FORMAT + 1)[:-10]  # truncated too: format first
    with pytest.raises(SnapshotError) as info:
        decode(data, SEALER)
    assert info.value.code == "snapshot_too_new"
    assert f"format {SNAPSHOT_FORMAT + 1}" in info.value.message


def test_another_cluster_key_is_foreign_and_says_the_same_key_is_needed() -> None:
    with pytest.raises(SnapshotError) as info:
        decode(archive(sealer=SnapshotSealer(OTHER)), SEALER)
    assert info.value.code == "snapshot_foreign"
    assert "same cluster key" in info.value.message


def test_a_header_changed_without_the_key_is_foreign() -> None:
    """Rewriting the index (or any signed field) and the sha256 to match keeps
    the checksum right but not the MAC."""
    data = archive()
    length = struct.unpack_from(">I", data, len(MAGIC))[0]
    header = msgpack.unpackb(data[PREFIX : PREFIX + length])
    header["index"] = 7
    packed = msgpack.packb(header)
    forged = MAGIC + struct.pack(">I", len(packed)) + packed + BODY
    assert decode(forged).index == 7  # no key: only the checksum, which holds
    assert code_of(forged) == "snapshot_foreign"


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_single_bit_flip_or_cut_is_refused(data: st.DataObject) -> None:
    good = archive(body=BODY[:300])
    if data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(good) - 1))
        bit = data.draw(st.integers(0, 7))
        damaged = bytearray(good)
        damaged[at] ^= 1 << bit
        bad = bytes(damaged)
    else:
        bad = good[: data.draw(st.integers(0, len(good) - 1))]
    with pytest.raises(SnapshotError):
        decode(bad, SEALER)


# --- sealed values --------------------------------------------------------------------


def sealed_tables(cluster_key: str) -> dict[str, dict[str, object]]:
    keys = KeyMaterial(cluster_key)
    nonce, ciphertext = keys.seal_secret("k1", "db", 2, b"hunter2")
    entry = {"key_id": "k1", "version": 2, "nonce": nonce, "ciphertext": ciphertext}
    return {
        "acl_meta": {"jwt_key": keys.new_wrapped_jwt_key()},
        "secrets": {"db": {"version": 2, "versions": [entry]}},
        "pki": {"ca": {"cert": "PEM", "key": CaKeys(cluster_key).seal("KEY PEM")}},
        "certs": {"a.example.com": {"key": keys.seal_private_key("cert:a.example.com", "K")}},
    }


def test_sealed_values_open_with_the_same_key_only() -> None:
    tables = sealed_tables(KEY)
    assert check_sealed(tables, KeyMaterial(KEY), CaKeys(KEY)) == 4
    with pytest.raises(SnapshotError) as info:
        check_sealed(tables, KeyMaterial(OTHER), CaKeys(OTHER))
    assert info.value.code == "snapshot_foreign"
    for table in ("acl_meta", "secrets", "pki", "certs"):  # each one alone is enough
        only = {table: sealed_tables(KEY)[table]}
        with pytest.raises(SnapshotError):
            check_sealed(only, KeyMaterial(OTHER), CaKeys(OTHER))
    assert check_sealed({}, KeyMaterial(OTHER), CaKeys(OTHER)) == 0  # nothing sealed
