"""A backup's body: the replicated tables as a snapshot, compressed.

What `GET /v1/operator/snapshot` streams (inside domain.snapshot_archive's
header) and what `state.restore` (raft.fsm_restore) loads: the tables of
raft.state's snapshot format, without the request memory or a restore being
staged, packed with msgpack and compressed with zlib (10,000 jobs of 5
versions: ≈60 MB packed, ≈2.5 MB compressed, so a restore is a few raft
entries rather than dozens). Secrets and keys stay sealed inside (they are
ciphertext in the tables). Pure: no raft node, no clock.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from raft.state import State, pack_snapshot, unpack_snapshot

# A decompressed body larger than this is refused (a zip bomb would otherwise
# take every server's memory when the restore is applied).
MAX_STATE_BYTES = 8 * 2**30
_LEVEL = 1  # zlib's fastest: 26x smaller than the packed state already, 3x faster than 6


class BodyError(ValueError):
    """The body does not decode into a state snapshot."""


@dataclass(frozen=True)
class Backup:
    index: int  # the state's index the backup holds
    body: bytes  # compressed packed tables
    counts: dict[str, int]  # rows per table


def take_backup(state: State) -> Backup:
    """A backup of `state` (the lock only for the shallow copy; packing and
    compressing happen outside it: documents are never mutated in place)."""
    captured = state.capture(backup=True)
    counts = {name: len(rows) for name, rows in captured["tables"].items()}
    return Backup(captured["index"], zlib.compress(pack_snapshot(captured), _LEVEL), counts)


def decode_body(body: bytes, max_bytes: int = MAX_STATE_BYTES) -> dict[str, Any]:
    """The snapshot a body holds; BodyError if it does not decode,
    raft.fatal.FormatTooNew if it is of a newer format than this server reads."""
    inflater = zlib.decompressobj()
    try:
        packed = inflater.decompress(body, max_bytes)
    except zlib.error as e:
        raise BodyError(f"the snapshot's body does not decompress: {e}") from None
    if inflater.unconsumed_tail:
        raise BodyError(f"the snapshot's body decompresses to more than {max_bytes} bytes")
    if not inflater.eof or inflater.unused_data:
        raise BodyError("the snapshot's body is not one complete zlib stream")
    try:
        return unpack_snapshot(packed)
    except (ValueError, TypeError) as e:  # msgpack's errors are ValueErrors too
        raise BodyError(f"the snapshot's body is not a state snapshot: {e}") from None
