"""`RaftConfig`: how a server runs its raft node (addresses, data dir, timings).

heroctld.server builds it from the server's configuration; raft.node runs it,
raft.pysyncobj_glue turns it into pysyncobj's own configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    extra: dict[str, Any] = field(default_factory=dict)  # more SyncObjConf settings
