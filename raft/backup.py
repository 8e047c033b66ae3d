"""A backup's body: the replicated tables as a stream of records, compressed.

What `GET /v1/operator/snapshot` streams (inside domain.snapshot_archive's
header) and what a restore (raft.fsm_restore) loads. A zlib stream of
msgpack records: first `{"format", "index", "table_index"}` (raft.formats'
SNAPSHOT_FORMAT: the tables are raft.state's), then `[table, [[key, row],
...]]` records of at most ROWS_PER_RECORD rows. The request memory and a
restore being staged are not in it. Secrets and keys stay sealed inside
(they are ciphertext in the tables).

Records rather than one map: packing and unpacking 60 MB of state (10,000
jobs of 5 versions; ≈2.2 MB compressed) is a C call per record, so a thread
doing it lets the others run between records; one call for the whole state
held the interpreter for half a second, and a raft tick thread that waits
that long misses its heartbeats (an election). Pure: no raft node, no clock.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgpack

from raft.formats import SNAPSHOT_FORMAT, check_snapshot_format
from raft.state import State

# A decompressed body larger than this is refused (a zip bomb would otherwise
# take every server's memory when the restore is applied).
MAX_STATE_BYTES = 8 * 2**30
ROWS_PER_RECORD = 256
_LEVEL = 1  # zlib's fastest: 27x smaller than the packed state already, 3x faster than 6
_STEP = 2**20  # bytes inflated per call


class BodyError(ValueError):
    """The body does not decode into a state snapshot."""


@dataclass(frozen=True)
class Backup:
    index: int  # the state's index the backup holds
    body: bytes  # compressed records
    counts: dict[str, int]  # rows per table


def _records(captured: dict[str, Any]) -> Iterator[Any]:
    yield {
        "format": captured["format"],
        "index": captured["index"],
        "table_index": captured["table_index"],
    }
    for name, rows in captured["tables"].items():
        items = [[key, row] for key, row in rows.items()]
        for start in range(0, len(items), ROWS_PER_RECORD):
            yield [name, items[start : start + ROWS_PER_RECORD]]


def take_backup(state: State) -> Backup:
    """A backup of `state` (the lock only for the shallow copy; packing and
    compressing happen outside it: documents are never mutated in place)."""
    captured = state.capture(backup=True)
    counts = {name: len(rows) for name, rows in captured["tables"].items()}
    packer = msgpack.Packer(use_bin_type=True)
    deflater = zlib.compressobj(_LEVEL)
    parts = [deflater.compress(packer.pack(record)) for record in _records(captured)]
    parts.append(deflater.flush())
    return Backup(captured["index"], b"".join(parts), counts)


def _inflate(body: bytes, limit: int) -> Iterator[bytes]:
    inflater = zlib.decompressobj()
    total = 0
    try:
        for start in range(0, len(body), _STEP):
            pending = body[start : start + _STEP]
            while pending:
                out = inflater.decompress(pending, _STEP)
                pending = inflater.unconsumed_tail
                total += len(out)
                if total > limit:
                    raise BodyError(f"the snapshot's body decompresses to more than {limit} bytes")
                yield out
        yield inflater.flush()
    except zlib.error as e:
        raise BodyError(f"the snapshot's body does not decompress: {e}") from None
    if not inflater.eof or inflater.unused_data:
        raise BodyError("the snapshot's body is not one complete zlib stream")


def decode_body(body: bytes, max_bytes: int = MAX_STATE_BYTES) -> dict[str, Any]:
    """The snapshot a body holds (`{"format", "index", "table_index", "tables"}`);
    BodyError if it does not decode, raft.fatal.FormatTooNew if it is of a
    newer format than this server reads."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    head: dict[str, Any] | None = None
    tables: dict[str, dict[Any, Any]] = {}
    try:
        for chunk in _inflate(body, max_bytes):
            unpacker.feed(chunk)
            for record in unpacker:
                if head is None:
                    head = _head(record)
                    continue
                name, rows = record
                tables.setdefault(name, {}).update(rows)
    except (ValueError, TypeError) as e:  # msgpack's errors are ValueErrors too
        if isinstance(e, BodyError):
            raise
        raise BodyError(f"the snapshot's body is not a state snapshot: {e}") from None
    if head is None:
        raise BodyError("the snapshot's body is empty")
    return {**head, "tables": tables}


def _head(record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise BodyError("the snapshot's body does not start with its format")
    check_snapshot_format(record.get("format"))
    if record.get("format") != SNAPSHOT_FORMAT or not isinstance(record.get("index"), int):
        raise BodyError("the snapshot's body is not a heroctl state snapshot")
    table_index = record.get("table_index") or {}
    return {"format": record["format"], "index": record["index"], "table_index": table_index}
