"""Backup and restore with 10,000 jobs of 5 versions (issue 14 part 3).

The state is loaded as bench_memory loads it (50,000 concurrent submits
through the leader). Then, on the leader:
- save: `GET /v1/operator/snapshot` until the last byte; the file's size and
  the packed state it compresses (the tables' raw msgpack, from the body);
- restore: `PUT /v1/operator/snapshot` of that file after 1,000 jobs were
  deleted, until it answers (proposed in parts and applied by the leader),
  then until every server has applied it and lists the 10,000 jobs again;
  the raft term before and after says whether the restore (every server
  decoding the whole state on its raft thread) cost an election.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

from bench.common import (
    LoadSpec,
    auth_headers,
    generate,
    load_average,
    log,
    metric,
    partial,
    running_cluster,
    server_pids,
    stale_job_count,
    versioned_job_items,
)
from domain.snapshot_archive import decode
from tests.support.cluster import Cluster, Server, wait_until

CLIENTS = 64
GEN_PROCS = 2
VERSIONS = 5


def _delete_items(proc: int, jobs: int, procs: int) -> list[tuple[str, bytes | None]]:
    return [(f"/v1/jobs/s{k}", None) for k in range(jobs) if k % procs == proc]


def _applied(server: Server, index: int) -> bool:
    st = server.status()
    return bool(st) and st["state_index"] >= index


def _load(cluster: Cluster, leader: Server, jobs: int) -> dict[str, Any]:
    spec = LoadSpec(
        urls=[leader.url],
        method="POST",
        items=partial(
            versioned_job_items, jobs=jobs, procs=GEN_PROCS, versions=VERSIONS, prefix="s"
        ),
        concurrency=CLIENTS,
        procs=GEN_PROCS,
        duration=600.0,
        count_mode=True,
        retries=5,
        headers=auth_headers(leader),
    )
    load = generate(spec, server_pids(cluster))
    if load.ok != jobs * VERSIONS:
        raise RuntimeError(f"only {load.ok} of {jobs * VERSIONS} submits: {load.summary()}")
    return load.summary()


def run(quick: bool = False) -> dict[str, Any]:
    jobs = 1000 if quick else 10_000
    out: dict[str, Any] = {}
    details: dict[str, Any] = {"load_average_before": load_average(), "jobs": jobs}
    with running_cluster(3, "snapshot") as cluster:
        leader = cluster.leader()
        log(f"snapshot: storing {jobs} jobs x {VERSIONS} versions")
        details["load"] = _load(cluster, leader, jobs)
        commit = leader.status()["state_index"]
        for s in cluster.servers:
            wait_until(lambda s=s: _applied(s, commit), 120, message=f"{s.name} caught up")

        t0 = time.monotonic()
        saved = leader.get("/v1/operator/snapshot", timeout=300)
        save_s = time.monotonic() - t0
        if saved.status != 200:
            raise RuntimeError(f"save answered {saved.status}: {saved.raw[:200]!r}")
        snap = decode(saved.raw)
        packed = len(zlib.decompress(snap.body))
        details["snapshot"] = {
            "index": snap.index,
            "file_bytes": len(saved.raw),
            "packed_state_bytes": packed,
            "tables": {k: v for k, v in snap.tables.items() if v},
        }
        log(f"snapshot: saved {len(saved.raw)} bytes ({packed} packed) in {save_s:.2f}s")
        out["snapshot_save_s"] = metric(round(save_s, 3), "s", None if quick else "<= 3")
        out["snapshot_size_mb"] = metric(round(len(saved.raw) / 2**20, 2), "MB")

        deleted = jobs // 10
        generate(
            LoadSpec(
                urls=[leader.url],
                method="DELETE",
                items=partial(_delete_items, jobs=deleted, procs=GEN_PROCS),
                concurrency=CLIENTS,
                procs=GEN_PROCS,
                duration=300.0,
                count_mode=True,
                retries=5,
                headers=auth_headers(leader),
            )
        )
        term = leader.status()["raft_term"]
        headers = {**auth_headers(leader), "Content-Type": "application/octet-stream"}
        t0 = time.monotonic()
        restored = leader.put("/v1/operator/snapshot", raw=saved.raw, headers=headers, timeout=300)
        restore_s = time.monotonic() - t0
        if restored.status != 200:
            raise RuntimeError(f"restore answered {restored.status}: {restored.raw[:300]!r}")
        index = restored.body["index"]
        for s in cluster.servers:
            wait_until(lambda s=s: _applied(s, index), 120, 0.02, message=f"{s.name} restored")
        converged_s = time.monotonic() - t0
        counts = {s.name: stale_job_count(s, timeout=60) for s in cluster.servers}
        details["restore"] = {
            "index": index,
            "answered_s": round(restore_s, 3),
            "every_server_s": round(converged_s, 3),
            "jobs_after": counts,
            "raft_term_before": term,
            "raft_term_after": cluster.leader().status()["raft_term"],
        }
        if any(c != jobs for c in counts.values()):
            raise RuntimeError(f"job counts after the restore differ from {jobs}: {counts}")
        log(f"snapshot: restored in {restore_s:.2f}s, every server in {converged_s:.2f}s")
        out["snapshot_restore_s"] = metric(round(restore_s, 3), "s")
        out["snapshot_restore_every_server_s"] = metric(
            round(converged_s, 3), "s", None if quick else "<= 5"
        )
    details["load_average_after"] = load_average()
    out["_details"] = details
    return out
