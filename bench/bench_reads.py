"""Reads on a follower with 64 clients: consistent (default) vs `?stale=true`.

The two modes alternate in equal phases (consistent, stale, consistent, ...)
so that drift in the machine's background load hits both alike; the rate of a
mode is its total over its phases. A consistent read on a follower costs a
coalesced raft barrier (one round trip shared by all reads that arrive
together); a stale one answers from local state.
"""

from __future__ import annotations

from typing import Any

from bench.common import (
    LoadSpec,
    auth_headers,
    generate,
    job_get_items,
    load_average,
    log,
    metric,
    partial,
    percentile,
    profiled,
    running_cluster,
    sequential,
    server_pids,
)

CLIENTS = 64
GEN_PROCS = 2
JOBS = 100


def _seed_items(proc: int) -> list[tuple[str, bytes | None]]:
    from bench.common import job_body

    return [("/v1/jobs", job_body(f"r{k}", 0)) for k in range(JOBS)]


def run(quick: bool = False) -> dict[str, Any]:
    phase = 2.0 if quick else 5.0
    pairs = 1 if quick else 2
    names = [f"r{k}" for k in range(JOBS)]
    out: dict[str, Any] = {}
    details: dict[str, Any] = {"load_average_before": load_average(), "phases": []}
    with running_cluster(3, "reads") as cluster:
        leader = cluster.leader()
        follower = next(s for s in cluster.servers if s is not leader)
        headers = auth_headers(follower)
        pids = server_pids(cluster)
        details["follower"] = follower.name
        seeded = sequential(leader.url, "POST", _seed_items, auth_headers(leader))
        if seeded.ok != JOBS:
            raise RuntimeError(f"seeding jobs failed: {seeded.summary()}")
        totals: dict[str, list[Any]] = {"consistent": [0, 0.0, [], []], "stale": [0, 0.0, [], []]}
        for _ in range(pairs):
            for mode in ("consistent", "stale"):
                log(f"reads: {CLIENTS} clients, {mode} GET /v1/jobs/:name for {phase:g}s")
                name = f"reads-{mode}-follower"
                pid = pids.get(follower.name) if f"profile_{mode}" not in details else None
                with profiled(name, pid) as profile:
                    res = generate(
                        LoadSpec(
                            urls=[follower.url],
                            method="GET",
                            items=partial(job_get_items, names=names, stale=mode == "stale"),
                            concurrency=CLIENTS,
                            procs=GEN_PROCS,
                            duration=phase,
                            headers=headers,
                        ),
                        pids,
                    )
                if profile:
                    details[f"profile_{mode}"] = profile
                totals[mode][0] += res.ok
                totals[mode][1] += res.window_s
                totals[mode][2].extend(res.latencies_ms)
                totals[mode][3].append(res.cpu_ms_per_request().get(follower.name, float("nan")))
                details["phases"].append({"mode": mode, **res.summary()})
                log(f"reads: {mode} {res.rate:.0f}/s, cpu {res.cpu}, gen {res.gen_cpu_pct}")
        rate = {m: t[0] / t[1] for m, t in totals.items()}
        out["consistent_reads_per_s"] = metric(rate["consistent"], "reads/s")
        out["stale_reads_per_s"] = metric(rate["stale"], "reads/s")
        out["consistent_vs_stale_pct"] = metric(
            100.0 * rate["consistent"] / rate["stale"] if rate["stale"] else 0.0, "%", ">= 50"
        )
        out["consistent_p50_ms"] = metric(percentile(totals["consistent"][2], 50), "ms")
        out["consistent_p99_ms"] = metric(percentile(totals["consistent"][2], 99), "ms")
        out["stale_p50_ms"] = metric(percentile(totals["stale"][2], 50), "ms")
        out["stale_p99_ms"] = metric(percentile(totals["stale"][2], 99), "ms")
        for mode in ("consistent", "stale"):
            costs = totals[mode][3]
            out[f"{mode}_follower_cpu_ms_per_read"] = metric(sum(costs) / len(costs), "ms")
    details["load_average_after"] = load_average()
    out["_details"] = details
    return out
