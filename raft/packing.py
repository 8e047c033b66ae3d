"""Bytes for the documents raft keeps: log commands, a job's old versions and
remembered results.

JSON (orjson) when the document is JSON, msgpack when it is not (bytes such as
sealed secrets, keys that are not strings, integers beyond 64 bits). orjson
writes a job about 4x and reads it about 2x faster than msgpack (it interns
the repeated keys), and every write is encoded once and decoded by every
server. Both keep str, int, float, bool, None, lists and maps exactly; a
float NaN or infinity, which no API input can carry, would read back as null.

The first byte tells the formats apart: a packed document is always a map,
which JSON starts with '{' and msgpack with 0x80-0x8f, 0xde or 0xdf (so logs
and snapshots written before JSON was used still read).
"""

from __future__ import annotations

from typing import Any

import msgpack
import orjson

_JSON_MAP = b"{"


def pack(doc: dict[Any, Any]) -> bytes:
    try:
        data = orjson.dumps(doc)
    except TypeError:  # orjson.JSONEncodeError: not JSON
        return msgpack.packb(doc, use_bin_type=True)
    return tight(data)


def tight(data: bytes) -> bytes:
    """A copy of orjson's output that is kept around: orjson's bytes keep the
    buffer it wrote into (4 KB at least), so 10,000 jobs' stored versions
    took 2.5x the memory (docs/performance.md #9)."""
    return bytes(memoryview(data))


def unpack(data: bytes) -> Any:
    if data[:1] == _JSON_MAP:
        return orjson.loads(data)
    return msgpack.unpackb(data, raw=False, strict_map_key=False)
