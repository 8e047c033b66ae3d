"""HTTPS beside plain HTTP: the write and read benchmarks on two 3-server
clusters, one with TLS (the default, its own CA) and one with `[tls] mode = off`.

Both clusters run at once (the idle one costs next to nothing) and the
phases alternate (http, https, http, https ...) so that drift in the
machine's background load hits both alike. Clients keep their connections
alive, as every real client does: TLS costs a handshake per connection and
then symmetric encryption of each request and answer. Goal: HTTPS at least
0.8x the plain rate, for writes (64 clients on the leader) and for
consistent reads (64 clients on a follower); one sequential client's p50
write latency for both is reported beside them.
"""

from __future__ import annotations

import contextlib
from typing import Any

from bench.common import (
    LoadSpec,
    auth_headers,
    cycling_job_items,
    generate,
    job_body,
    job_get_items,
    load_average,
    log,
    metric,
    partial,
    running_cluster,
    sequential,
    server_pids,
)
from tests.support import tls as test_tls
from tests.support.cluster import Cluster

CLIENTS = 64
GEN_PROCS = 2
JOBS = 100
SCHEMES = ("http", "https")


def _seed_items(proc: int) -> list[tuple[str, bytes | None]]:
    return [("/v1/jobs", job_body(f"r{k}", 0)) for k in range(JOBS)]


def _seq_items(proc: int, count: int, prefix: str) -> list[tuple[str, bytes | None]]:
    names = cycling_job_items(proc, 50, prefix)
    return [names[i % len(names)] for i in range(count)]


def run(quick: bool = False) -> dict[str, Any]:
    phase = 2.0 if quick else 5.0
    pairs = 1 if quick else 2
    seq_count = 200 if quick else 1000
    ca = str(test_tls.bundle())
    names = [f"r{k}" for k in range(JOBS)]
    out: dict[str, Any] = {}
    details: dict[str, Any] = {"load_average_before": load_average(), "phases": []}
    with contextlib.ExitStack() as stack:
        clusters: dict[str, Cluster] = {
            scheme: stack.enter_context(running_cluster(3, f"tls-{scheme}", tls=scheme == "https"))
            for scheme in SCHEMES
        }
        pids = {f"{k}/{n}": p for k, c in clusters.items() for n, p in server_pids(c).items()}
        roles = {}
        for scheme, cluster in clusters.items():
            leader = cluster.leader()
            roles[scheme] = (leader, next(s for s in cluster.servers if s is not leader))
            seeded = sequential(leader.url, "POST", _seed_items, auth_headers(leader), ca_file=ca)
            if seeded.ok != JOBS:
                raise RuntimeError(f"seeding jobs over {scheme} failed: {seeded.summary()}")
        totals = {(s, k): [0, 0.0] for s in SCHEMES for k in ("writes", "reads")}
        for scheme in SCHEMES:
            leader, _ = roles[scheme]
            log(f"tls: {seq_count} sequential submits through the leader over {scheme}")
            seq = sequential(
                leader.url,
                "POST",
                partial(_seq_items, count=seq_count, prefix=f"s{scheme}"),
                auth_headers(leader),
                ca_file=ca,
            )
            out[f"seq_{scheme}_p50_ms"] = metric(seq.p(50), "ms")
            out[f"seq_{scheme}_p99_ms"] = metric(seq.p(99), "ms")
        for _ in range(pairs):
            for kind in ("writes", "reads"):
                for scheme in SCHEMES:
                    leader, follower = roles[scheme]
                    target = leader if kind == "writes" else follower
                    if kind == "writes":
                        items = partial(cycling_job_items, names_per_proc=200, prefix="c")
                    else:
                        items = partial(job_get_items, names=names, stale=False)
                    res = generate(
                        LoadSpec(
                            urls=[target.url],
                            method="POST" if kind == "writes" else "GET",
                            items=items,
                            concurrency=CLIENTS,
                            procs=GEN_PROCS,
                            duration=phase,
                            headers=auth_headers(target),
                            ca_file=ca,
                        ),
                        pids,
                    )
                    totals[(scheme, kind)][0] += res.ok
                    totals[(scheme, kind)][1] += res.window_s
                    details["phases"].append({"scheme": scheme, "kind": kind, **res.summary()})
                    log(f"tls: {kind} over {scheme}: {res.rate:.0f}/s, errors {res.errors}")
        for kind in ("writes", "reads"):
            rate = {s: totals[(s, kind)][0] / max(totals[(s, kind)][1], 1e-9) for s in SCHEMES}
            for scheme in SCHEMES:
                out[f"c64_{kind}_{scheme}_per_s"] = metric(rate[scheme], f"{kind}/s")
            ratio = rate["https"] / rate["http"] if rate["http"] else 0.0
            out[f"c64_{kind}_https_vs_http"] = metric(ratio, "x", ">= 0.8")
    details["load_average_after"] = load_average()
    out["_details"] = details
    return out


if __name__ == "__main__":
    import json
    import sys

    result = run(quick="--quick" in sys.argv)
    print(json.dumps({k: v for k, v in result.items() if k != "_details"}, indent=2))
