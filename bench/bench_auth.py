"""The cost of authentication: authenticated `GET /v1/jobs/:name` next to
`GET /v1/health/live` on one node, in the same run.

Both go through the same middleware chain (request id, error envelope, auth,
rate limit); health is public and exempt from limits, the job read verifies a
JWT (HS256, session lookup), checks the ACL (`jobs: read`) and counts against a
rate limit (set high enough here not to refuse). Modes alternate in equal
phases so background load hits them alike. Besides the default (consistent)
job read, which also pays a raft barrier, the same read with `?stale=true`
isolates what auth + ACL + limiting cost on top of serving a document, and
`GET /v1/acl/tokens/self` (a tiny authenticated handler) shows the auth chain
next to health alone. Server CPU per request is reported too: on a shared,
busy machine it is steadier than rates.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from bench.common import (
    LoadSpec,
    auth_headers,
    generate,
    load_average,
    log,
    metric,
    partial,
    percentile,
    running_cluster,
    server_pids,
)
from tests.support.http import request

CLIENTS = 32
GEN_PROCS = 2
JOB = "bench-auth"
MODES = ("health", "whoami", "jobs", "jobs_stale")


def _items(proc: int, path: str) -> list[tuple[str, bytes | None]]:
    return [(path, None)]


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    """Environment for the servers started inside (the harness passes os.environ on)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _client_jwt(url: str, admin: dict[str, str]) -> str:
    """A JWT for a non-management token that may read jobs (the common case)."""
    r = request(
        "POST", url + "/v1/acl/policies/bench-read", {"rules": {"jobs": "read"}}, headers=admin
    )
    assert r.status in (200, 201), r.raw
    r = request(
        "POST", url + "/v1/acl/tokens", {"name": "bench", "policies": ["bench-read"]}, headers=admin
    )
    assert r.status == 201, r.raw
    r = request("POST", url + "/v1/auth/login", {"acl_token": r.body["secret_id"]})
    assert r.status == 200, r.raw
    return r.body["token"]


def run(quick: bool = False) -> dict[str, Any]:
    phase = 2.0 if quick else 5.0
    rounds = 1 if quick else 2
    out: dict[str, Any] = {}
    details: dict[str, Any] = {"load_average_before": load_average(), "phases": []}
    # Limits high enough never to refuse, but still counted on every request.
    with _env(HEROCTL_RATE_LIMIT_DEFAULT="1000000000"), running_cluster(1, "auth") as cluster:
        server = cluster.servers[0]
        admin = auth_headers(server)
        job = {"name": JOB, "image": "busybox", "meta": {"purpose": "auth benchmark"}}
        r = request("POST", server.url + "/v1/jobs", job, headers=admin)
        if r.status not in (200, 201):
            raise RuntimeError(f"seeding the job failed: {r.status} {r.raw[:200]!r}")
        jwt = _client_jwt(server.url, admin)
        pids = server_pids(cluster)
        paths = {
            "health": ("/v1/health/live", {}),
            "jobs": (f"/v1/jobs/{JOB}", {"Authorization": f"Bearer {jwt}"}),
            "jobs_stale": (f"/v1/jobs/{JOB}?stale=true", {"Authorization": f"Bearer {jwt}"}),
            "whoami": ("/v1/acl/tokens/self", {"Authorization": f"Bearer {jwt}"}),
        }
        cpu: dict[str, list[float]] = {m: [] for m in MODES}
        totals: dict[str, list[Any]] = {m: [0, 0.0, []] for m in MODES}
        for _ in range(rounds):
            for mode in MODES:
                path, headers = paths[mode]
                log(f"auth: {CLIENTS} clients, GET {path} for {phase:g}s")
                res = generate(
                    LoadSpec(
                        urls=[server.url],
                        method="GET",
                        items=partial(_items, path=path),
                        concurrency=CLIENTS,
                        procs=GEN_PROCS,
                        duration=phase,
                        headers=headers,
                    ),
                    pids,
                )
                bad = {k: v for k, v in res.statuses.items() if not k.startswith("2")}
                if bad:
                    raise RuntimeError(f"auth bench: {mode} got non-2xx answers {bad}")
                totals[mode][0] += res.ok
                totals[mode][1] += res.window_s
                totals[mode][2].extend(res.latencies_ms)
                if "server-1" in res.cpu_ms_per_request():
                    cpu[mode].append(res.cpu_ms_per_request()["server-1"])
                details["phases"].append({"mode": mode, **res.summary()})
                log(f"auth: {mode} {res.rate:.0f}/s, cpu {res.cpu}")
        rate = {m: t[0] / t[1] if t[1] else 0.0 for m, t in totals.items()}
        out["health_live_per_s"] = metric(rate["health"], "req/s")
        out["auth_job_get_per_s"] = metric(rate["jobs"], "req/s")
        out["auth_job_get_vs_health_pct"] = metric(
            100.0 * rate["jobs"] / rate["health"] if rate["health"] else 0.0, "%", ">= 70"
        )
        out["auth_job_get_stale_per_s"] = metric(rate["jobs_stale"], "req/s")
        out["auth_job_get_stale_vs_health_pct"] = metric(
            100.0 * rate["jobs_stale"] / rate["health"] if rate["health"] else 0.0, "%"
        )
        out["auth_whoami_per_s"] = metric(rate["whoami"], "req/s")
        out["auth_whoami_vs_health_pct"] = metric(
            100.0 * rate["whoami"] / rate["health"] if rate["health"] else 0.0, "%"
        )
        for mode in MODES:
            out[f"{mode}_p50_ms"] = metric(percentile(totals[mode][2], 50), "ms")
            if cpu[mode]:  # server CPU per request: robust on a busy machine
                out[f"{mode}_server_cpu_ms_per_req"] = metric(min(cpu[mode]), "ms")
    details["load_average_after"] = load_average()
    out["_details"] = details
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=1, default=str))
