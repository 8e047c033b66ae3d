"""The snapshot file: raft's position and membership, and the packed state.

pysyncobj calls our serializer when it compacts its log and our deserializer
when it starts from, or receives, a snapshot (raft.pysyncobj_glue passes
them). The file is one msgpack map, never pickle:
`{"raft": {"last", "prev", "cluster"}, "state": <raft.state snapshot bytes>}`,
where `last` and `prev` are pysyncobj's (index, term) pairs and `cluster`
the members' raft addresses.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import msgpack

from raft.state import State, pack_snapshot, unpack_snapshot

log = logging.getLogger("heroctld.raft")


def write_snapshot(
    path: str, state: State, last: tuple[Any, ...], prev: tuple[Any, ...], cluster: list[str]
) -> None:
    """Write `state` with raft's position, durably."""
    doc = {
        "raft": {"last": list(last), "prev": list(prev), "cluster": sorted(cluster)},
        "state": pack_snapshot(state.capture()),
    }
    with open(path, "wb") as f:
        f.write(msgpack.packb(doc, use_bin_type=True))
        f.flush()
        os.fsync(f.fileno())
    log.info("raft: snapshot written at index %d", last[1])


def read_snapshot(path: str, state: State) -> tuple[tuple[Any, ...], tuple[Any, ...], list[str]]:
    """Load the file's tables into `state`; raft's (last, prev, cluster addresses)."""
    with open(path, "rb") as f:
        doc = msgpack.unpackb(f.read(), raw=False, strict_map_key=False)
        # A snapshot received from the leader was written by pysyncobj without
        # an fsync; it replaces the journal and is acknowledged once that is
        # flushed (its rename with it: raft.pysyncobj_journal), so it must be
        # on disk first.
        os.fsync(f.fileno())
    state.load(unpack_snapshot(doc["state"]))
    r = doc["raft"]
    log.info("raft: snapshot loaded at index %d", r["last"][1])
    return tuple(r["last"]), tuple(r["prev"]), list(r["cluster"])
