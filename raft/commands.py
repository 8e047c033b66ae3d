"""Commands: the only thing that enters the raft log.

A command is a small map `{"op": "job.upsert", "rid": "...", "ts": ms, ...}`
(and `"v"`, its format, when it needs a newer one than 1: raft.formats).
Many commands travel together as one raft entry (a batch), which is how
concurrent writes share one round trip. An entry is `[format, [command, ...]]`
in msgpack, each command packed (raft.packing: JSON, or msgpack when a command
carries bytes), never pickle. An entry or command of a newer format than this
server reads stops it before anything of it is applied (raft.formats).
"""

from __future__ import annotations

import random
import time
from typing import Any

import msgpack

from raft.errors import CommandError
from raft.formats import ENTRY_FORMAT, check_entry_format
from raft.packing import pack, unpack

# pysyncobj's chunked path for entries >= appendEntriesBatchSizeBytes is
# buggy (notes/pysyncobj.md #8): raft.pysyncobj_glue raises that to 4 MiB
# and we keep every entry well below it.
MAX_COMMAND_BYTES = 2 * 1024 * 1024
MAX_BATCH_BYTES = 3 * 1024 * 1024


# Request ids only need to be unique (the FSM's retry dedupe key), not secret:
# 128 bits from a generator seeded once from the OS, not a syscall per write.
_ids = random.Random(random.SystemRandom().getrandbits(256))


def new_request_id() -> str:
    """32 hex digits, unique across servers and restarts (like a uuid4)."""
    return f"{_ids.getrandbits(128):032x}"


def new_command(op: str, **fields: Any) -> dict[str, Any]:
    cmd: dict[str, Any] = {"op": op, "rid": new_request_id(), "ts": int(time.time() * 1000)}
    cmd.update(fields)
    return cmd


def timestamp(cmd: dict[str, Any]) -> int:
    """The command's `ts` (ms, set by the proposer: the FSM reads no clock), 0 if it has none."""
    ts = cmd.get("ts")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else 0


def encode_command(cmd: dict[str, Any]) -> bytes:
    if not isinstance(cmd.get("op"), str):
        raise CommandError("command without op")
    data = pack(cmd)
    if len(data) > MAX_COMMAND_BYTES:
        raise CommandError(f"command of {len(data)} bytes is over {MAX_COMMAND_BYTES}")
    return data


def encode_batch(encoded: list[bytes]) -> bytes:
    """Join already-encoded commands into one raft entry."""
    return msgpack.packb([ENTRY_FORMAT, encoded], use_bin_type=True)


def decode_batch(entry: bytes) -> list[dict[str, Any] | None]:
    """Decode an entry; a command that does not decode becomes None.

    raft.fatal.FormatTooNew when the entry is of a newer format than this
    server reads (nothing of it is applied then: the server stops)."""
    try:
        decoded = msgpack.unpackb(entry, raw=False)
    except Exception:
        return []
    if isinstance(decoded, list) and decoded:
        check_entry_format(decoded[0])
    try:
        marker, items = decoded
    except (TypeError, ValueError):
        return []
    if marker != ENTRY_FORMAT or not isinstance(items, list):
        return []
    out: list[dict[str, Any] | None] = []
    for item in items:
        try:
            cmd = unpack(item)
            out.append(cmd if isinstance(cmd, dict) else None)
        except Exception:
            out.append(None)
    return out
