"""`RaftConfig`: how a server runs its raft node (addresses, data dir, timings).

heroctld.server builds it from the server's configuration; raft.node runs it,
raft.pysyncobj_glue turns it into pysyncobj's own configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from raft.commands import MAX_BATCH_BYTES

# The largest raft entry: a batch of commands and pysyncobj's bytes around it.
ENTRY_MAX = MAX_BATCH_BYTES + 64 * 2**10
FRAME_SLACK = 64 * 2**10  # the message around the entries, compression, encryption
DEFAULT_MAX_FRAME = 8 * 2**20
# A frame must hold what our own servers send: pysyncobj packs entries into one
# message until they reach its batch size (append_batch_bytes), the last one
# may be a whole ENTRY_MAX, and an entry as large as the batch size takes
# pysyncobj's buggy chunked path (notes/pysyncobj.md #8).
MIN_FRAME = 2 * (ENTRY_MAX + FRAME_SLACK)  # 6.25 MiB


def append_batch_bytes(max_frame: int) -> int:
    """pysyncobj's appendEntriesBatchSizeBytes for a frame limit: a message
    holds at most this plus one entry, and at most half the limit (many small
    entries cost more than their bytes once pickled). 4 MiB for 8 MiB."""
    return min(max_frame - ENTRY_MAX - FRAME_SLACK, max_frame // 2)


@dataclass
class RaftConfig:
    self_address: str
    partners: list[str]
    data_dir: str
    raft_key: bytes  # 32 bytes, derived from the cluster key
    election_timeout_min: float = 0.4
    election_timeout_max: float = 1.4
    leader_fallback_timeout: float = 2.0
    tick_wait: float = 0.05  # idle poll; work wakes it (sockets, new commands)
    compaction_min_entries: int = 5000
    compaction_min_time: float = 300.0
    flush_journal: bool = True  # False only to measure what durability costs
    max_frame: int = DEFAULT_MAX_FRAME  # the largest message a raft peer may send
    extra: dict[str, Any] = field(default_factory=dict)  # more SyncObjConf settings

    def __post_init__(self) -> None:
        if self.max_frame < MIN_FRAME:
            raise ValueError(f"max_frame must be at least {MIN_FRAME} bytes")
