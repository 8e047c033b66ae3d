"""Writes through the API on a 3-server cluster.

- 1 client, sequential job submits: p50/p99 through the leader and through a
  follower (which forwards over raft and answers once it applied the write).
- 64 concurrent clients on the leader for ~10 s: acknowledged writes/s; and,
  for comparison, the same 64 clients spread over all three servers.
Raw pysyncobj numbers for the same machine come from bench_raw_pysyncobj,
which `bench.run` runs right after this module.
"""

from __future__ import annotations

from typing import Any

from bench.common import (
    LoadSpec,
    auth_headers,
    cycling_job_items,
    generate,
    load_average,
    log,
    metric,
    partial,
    profiled,
    running_cluster,
    sequential,
    server_pids,
)

CLIENTS = 64
GEN_PROCS = 2


def _seq_items(proc: int, count: int, prefix: str) -> list[tuple[str, bytes | None]]:
    names = cycling_job_items(proc, 50, prefix)
    return [names[i % len(names)] for i in range(count)]


def run(quick: bool = False) -> dict[str, Any]:
    seq_count = 200 if quick else 2000
    duration = 3.0 if quick else 10.0
    out: dict[str, Any] = {}
    details: dict[str, Any] = {"load_average_before": load_average()}
    with running_cluster(3, "writes") as cluster:
        leader = cluster.leader()
        follower = next(s for s in cluster.servers if s is not leader)
        headers = auth_headers(leader)
        pids = server_pids(cluster)
        roles = {s.name: ("leader" if s is leader else "follower") for s in cluster.servers}
        details["roles"] = roles

        # Warm-up: first writes pay for connections, imports, JIT-less caches.
        sequential(leader.url, "POST", partial(_seq_items, count=50, prefix="warm"), headers)

        log(f"writes: {seq_count} sequential submits through the leader")
        seq_l = sequential(
            leader.url, "POST", partial(_seq_items, count=seq_count, prefix="sl"), headers, pids
        )
        log(f"writes: {seq_count} sequential submits through a follower")
        seq_f = sequential(
            follower.url, "POST", partial(_seq_items, count=seq_count, prefix="sf"), headers, pids
        )
        out["seq_leader_p50_ms"] = metric(seq_l.p(50), "ms", "<= 3")
        out["seq_leader_p99_ms"] = metric(seq_l.p(99), "ms")
        out["seq_follower_p50_ms"] = metric(seq_f.p(50), "ms")
        out["seq_follower_p99_ms"] = metric(seq_f.p(99), "ms")
        details["seq_leader"] = seq_l.summary()
        details["seq_follower"] = seq_f.summary()

        log(f"writes: {CLIENTS} clients on the leader for {duration:g}s")
        with profiled("writes-c64-leader", pids.get(leader.name)) as profile:
            conc = generate(
                LoadSpec(
                    urls=[leader.url],
                    method="POST",
                    items=partial(cycling_job_items, names_per_proc=200, prefix="c"),
                    concurrency=CLIENTS,
                    procs=GEN_PROCS,
                    duration=duration,
                    headers=headers,
                ),
                pids,
            )
        if profile:
            details["profile_c64_leader"] = profile
        out["c64_leader_writes_per_s"] = metric(conc.rate, "writes/s", ">= 3000")
        out["c64_leader_p50_ms"] = metric(conc.p(50), "ms")
        out["c64_leader_p99_ms"] = metric(conc.p(99), "ms")
        out["c64_leader_errors"] = metric(sum(conc.errors.values()) + conc.failed_items, "requests")
        cost = conc.cpu_ms_per_request()
        out["c64_leader_cpu_ms_per_write"] = metric(cost.get(leader.name, float("nan")), "ms")
        out["c64_follower_cpu_ms_per_write"] = metric(cost.get(follower.name, float("nan")), "ms")
        out["c64_generator_cpu_ms_per_write"] = metric(cost.get("generators", float("nan")), "ms")
        details["c64_leader"] = conc.summary()
        log(f"writes: {conc.rate:.0f}/s, cpu {conc.cpu} generators {conc.gen_cpu_pct}")

        log(f"writes: {CLIENTS} clients spread over all servers for {duration:g}s")
        spread = generate(
            LoadSpec(
                urls=[s.url for s in cluster.servers],
                method="POST",
                items=partial(cycling_job_items, names_per_proc=200, prefix="a"),
                concurrency=CLIENTS,
                procs=GEN_PROCS,
                duration=duration,
                headers=headers,
            ),
            pids,
        )
        out["c64_all_servers_writes_per_s"] = metric(spread.rate, "writes/s")
        out["c64_all_servers_p99_ms"] = metric(spread.p(99), "ms")
        details["c64_all_servers"] = spread.summary()
    details["load_average_after"] = load_average()
    out["_details"] = details
    return out
