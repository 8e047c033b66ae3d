"""Memory: RSS of every server idle and with 10,000 jobs of 5 versions each.

RSS is VmRSS from /proc/PID/status (RssAnon and RssFile kept in the details:
the raft journal is memory-mapped, so part of RSS is page cache). The state is
built with 50,000 concurrent submits through the leader (each job's 5 versions
in order). Then one follower is stopped (SIGTERM) and started again, and the
time from its start to ready with all the state (applied index caught up and
every job listed by its own state) is measured.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import (
    LoadSpec,
    auth_headers,
    generate,
    job_body,
    load_average,
    log,
    metric,
    partial,
    proc_status,
    profiled,
    running_cluster,
    server_pids,
    stale_job_count,
    versioned_job_items,
)
from tests.support.cluster import Cluster, Server, wait_until

CLIENTS = 64
GEN_PROCS = 2
VERSIONS = 5


def _rss(cluster: Cluster) -> dict[str, dict[str, float]]:
    out = {}
    for s in cluster.servers:
        if s.alive and s.proc is not None:
            st = proc_status(s.proc.pid)
            out[s.name] = {k: round(v / 1024.0, 1) for k, v in st.items() if k != "Threads"}
    return out


def _caught_up(server: Server, index: int) -> bool:
    st = server.status()
    return bool(st) and st["applied_index"] >= index


def run(quick: bool = False) -> dict[str, Any]:
    jobs = 1000 if quick else 10_000
    out: dict[str, Any] = {}
    details: dict[str, Any] = {
        "load_average_before": load_average(),
        "jobs": jobs,
        "versions": VERSIONS,
        "job_json_bytes": len(job_body("m9999", 4)),
    }
    with running_cluster(3, "memory") as cluster:
        leader = cluster.leader()
        time.sleep(2.0)  # idle: let start-up garbage settle
        idle = _rss(cluster)
        details["rss_idle_mb"] = idle
        out["rss_idle_max_mb"] = metric(max(v["VmRSS"] for v in idle.values()), "MB", "<= 80")

        log(f"memory: storing {jobs} jobs x {VERSIONS} versions with {CLIENTS} clients")
        pids = server_pids(cluster)
        with profiled("memory-load-leader", pids.get(leader.name)) as profile:
            load = generate(
                LoadSpec(
                    urls=[leader.url],
                    method="POST",
                    items=partial(
                        versioned_job_items,
                        jobs=jobs,
                        procs=GEN_PROCS,
                        versions=VERSIONS,
                        prefix="m",
                    ),
                    concurrency=CLIENTS,
                    procs=GEN_PROCS,
                    duration=600.0,
                    count_mode=True,
                    retries=5,
                    headers=auth_headers(leader),
                ),
                pids,
            )
        if profile:
            details["profile_load_leader"] = profile
        details["load"] = load.summary()
        expected = jobs * VERSIONS
        if load.ok != expected:
            raise RuntimeError(
                f"only {load.ok} of {expected} submits acknowledged: {load.summary()}"
            )
        log(f"memory: {load.ok} submits in {load.window_s:.1f}s ({load.rate:.0f}/s)")
        commit = leader.status()["commit_index"]
        for s in cluster.servers:
            wait_until(lambda s=s: _caught_up(s, commit), 60, message=f"{s.name} caught up")
        time.sleep(1.0)
        loaded = _rss(cluster)
        details["rss_loaded_mb"] = loaded
        target = None if quick else "<= 300"
        out["rss_loaded_max_mb"] = metric(max(v["VmRSS"] for v in loaded.values()), "MB", target)
        counts = {s.name: stale_job_count(s, timeout=30) for s in cluster.servers}
        details["job_counts"] = counts
        if any(c != jobs for c in counts.values()):
            raise RuntimeError(f"job counts differ from {jobs}: {counts}")

        victim = next(s for s in cluster.servers if s is not leader)
        log(f"memory: restarting {victim.name}")
        victim.stop()
        t0 = time.monotonic()
        victim.start(peers=cluster.peers)
        assert victim.proc is not None
        with profiled("memory-restart", victim.proc.pid) as profile:
            wait_until(victim.ready, 60, interval=0.02, message=f"{victim.name} ready")
            ready_s = time.monotonic() - t0
            wait_until(
                lambda: _caught_up(victim, commit),
                60,
                interval=0.02,
                message=f"{victim.name} applied the state",
            )
            state_s = time.monotonic() - t0
        if profile:
            details["profile_restart"] = profile
        restarted_count = stale_job_count(victim, timeout=30)
        details["restart"] = {
            "server": victim.name,
            "ready_s": round(ready_s, 3),
            "state_applied_s": round(state_s, 3),
            "jobs": restarted_count,
            # A restarted follower can win an election (pysyncobj has no PreVote).
            "leader_before": leader.name,
            "leader_after": cluster.leader().name,
        }
        if restarted_count != jobs:
            raise RuntimeError(f"{victim.name} lists {restarted_count} jobs after restart")
        time.sleep(1.0)
        details["rss_after_restart_mb"] = _rss(cluster)
        out["restart_ready_s"] = metric(max(ready_s, state_s), "s", None if quick else "<= 5")
        data_files = {}
        for p in sorted(victim.data_dir.glob("*")):
            if p.is_file():
                data_files[p.name] = p.stat().st_size
        details["data_dir_bytes"] = data_files
    details["load_average_after"] = load_average()
    out["_details"] = details
    return out
