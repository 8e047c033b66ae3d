"""The deployments benchmark's three measurements, one round each (the module
docstring of bench.bench_deployments says what each measures and how):
``rolling_round`` (total / floor of a 10-replica rolling update),
``strategy_round`` (failed requests through the ingress during a rolling,
canary or blue-green deployment) and ``revert_round`` (a failing health
check until the reverted version is healthy)."""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

from bench.common import load_average, log
from bench.deployments_access import attribute, read_access
from bench.deployments_cluster import (
    DeployCluster,
    all_healthy,
    allocation_details,
    delete_job,
    deployment_for,
    older_gone,
    submit,
    wait_allocations,
    wait_deployment,
    wait_reverted,
    web_job,
)
from bench.deployments_load import LoadReport, RequestLoop
from bench.deployments_timeline import (
    floor_of,
    marks,
    rolling_breakdown,
    start_times,
    stop_to_killed,
    version_marks,
)
from bench.ingress_tools import http_get
from tests.support.cluster import wait_until

MHT = 1.0  # min_healthy_time of every job, seconds
ROLL_REPLICAS, ROLL_PARALLEL = 10, 2
LOAD_REPLICAS = 4
LOAD_INTERVAL = 0.02  # per load thread: a request every 20 ms
BASELINE_S = 1.0  # load before the submit, and after the last old container is gone
BLOCKED_HOLD_S = 2.0  # load while a canary or blue-green deployment waits for the promote
REVERT_REPLICAS, REVERT_PARALLEL, REVERT_DEADLINE = 4, 2, 5.0
DEPLOY_TIMEOUT = 180.0


def _deployed(dc: DeployCluster, spec: dict[str, Any]) -> int:
    """Submit ``spec`` and wait until its deployment is successful: its version."""
    api = dc.api
    _, _, version = submit(api, spec)
    dep = deployment_for(api, spec["name"], version)
    _, doc = wait_deployment(api, dep["id"], ("successful",), DEPLOY_TIMEOUT)
    if doc["status"] != "successful":
        raise RuntimeError(
            f"{spec['name']} v{version}: {doc['status']}: {doc['status_description']}"
        )
    return version


# --- 1. rolling update: total / floor ----------------------------------------------------
def rolling_round(dc: DeployCluster, i: int) -> dict[str, Any]:
    api, job = dc.api, f"roll-{i}"
    update = {"max_parallel": ROLL_PARALLEL, "min_healthy_time": "1s"}
    _deployed(dc, web_job(job, "1", ROLL_REPLICAS, **update))
    load = load_average()
    t0, wall, version = submit(api, web_job(job, "2", ROLL_REPLICAS, **update))
    dep = deployment_for(api, job, version)
    seen, doc = wait_deployment(api, dep["id"], ("successful",), DEPLOY_TIMEOUT)
    total = seen - t0
    if doc["status"] != "successful":
        raise RuntimeError(f"{job} v{version}: {doc['status']}: {doc['status_description']}")
    details = allocation_details(api, job)
    rows = version_marks(details, version, wall)
    starts = start_times(rows, MHT)
    floor = floor_of(starts, MHT, math.ceil(ROLL_REPLICAS / ROLL_PARALLEL))
    successful_at = doc["modify_time"] / 1000.0 - wall
    breakdown = rolling_breakdown(rows, MHT, ROLL_PARALLEL, successful_at, total)
    delete_job(api, job)
    ratio = total / floor["floor_s"] if floor["floor_s"] > 0 else math.nan
    log(
        f"rolling {i + 1}: {total:.2f} s for {ROLL_REPLICAS} replicas, floor "
        f"{floor['floor_s']:.2f} s (start {floor['start_s_median']:.2f} s) = {ratio:.2f}x; "
        f"critical path {breakdown['critical_path']}, tail {breakdown['tail']}, load {load[0]}"
    )
    return {
        "ratio": round(ratio, 3),
        "total_s": round(total, 3),
        "floor_s": floor["floor_s"],
        "start_s": floor["start_s_median"],
        "floor": floor,
        **breakdown,
        "replaced_stop_to_killed": stop_to_killed(details, version, wall),
        "allocations": rows,
        "load_average": {"before": load, "after": load_average()},
    }


# --- 2. failed requests under load, per strategy -----------------------------------------
def _strategy_update(strategy: str) -> dict[str, Any]:
    update: dict[str, Any] = {"max_parallel": 1, "min_healthy_time": "1s"}
    if strategy == "canary":
        update |= {"strategy": "canary", "canary": 1}
    elif strategy == "blue-green":
        update |= {"strategy": "blue-green"}
    return update


def _serving(dc: DeployCluster, host: str, count: int) -> None:
    """Until the API routes ``count`` healthy allocations for ``host`` and
    every node's ingress answers it."""

    def routed() -> bool:
        r = dc.api.get(f"/v1/ingress/{host}", timeout=5)
        if r.status != 200:
            return False
        allocs = [a for route in r.body["routes"] for a in route["allocations"]]
        return sum(1 for a in allocs if a["healthy"]) == count

    wait_until(routed, 60, 0.1, f"{count} allocations routed for {host}")
    for name, port in dc.http_ports().items():
        wait_until(
            lambda port=port: http_get(port, host)[0] == 200,
            30,
            0.05,
            f"{name}'s ingress answering {host}",
        )


def _by_phase(report: LoadReport, bounds: list[tuple[str, float]]) -> dict[str, Any]:
    """Per phase of the deployment (each from its start to the next one's):
    answers per version served, and failures."""
    ends = [t for _, t in bounds[1:]] + [report.stopped + 1.0]
    return {
        name: report.served_between(start, end)
        for (name, start), end in zip(bounds, ends, strict=True)
    }


def strategy_round(dc: DeployCluster, strategy: str, i: int) -> dict[str, Any]:
    api, job = dc.api, f"lb-{strategy}-{i}"
    host = f"{strategy}-{i}.deploy.bench.test"
    update = _strategy_update(strategy)
    _deployed(dc, web_job(job, "1", LOAD_REPLICAS, host=host, **update))
    _serving(dc, host, LOAD_REPLICAS)
    load = load_average()
    marks_at: dict[str, float] = {}
    with RequestLoop(dc.http_ports(), host, LOAD_INTERVAL) as loop:
        time.sleep(BASELINE_S)  # a window of load before the deployment, to compare with
        t0, wall, version = submit(api, web_job(job, "2", LOAD_REPLICAS, host=host, **update))
        dep = deployment_for(api, job, version)
        if strategy != "rolling":
            blocked, doc = wait_deployment(api, dep["id"], ("blocked-on-promotion",), 120)
            if doc["status"] != "blocked-on-promotion":
                raise RuntimeError(f"{job}: {doc['status']} instead of blocked-on-promotion")
            marks_at["blocked"] = blocked
            time.sleep(BLOCKED_HOLD_S)  # a window of load while it waits for the promote
            r = api.post(f"/v1/deployments/{dep['id']}/promote", timeout=30)
            if r.status != 200:
                raise RuntimeError(f"promote {dep['id']}: {r.status} {r.raw[:300]!r}")
            marks_at["promoted"] = time.monotonic()
        done, doc = wait_deployment(api, dep["id"], ("successful",), DEPLOY_TIMEOUT)
        if doc["status"] != "successful":
            raise RuntimeError(f"{job} v{version}: {doc['status']}: {doc['status_description']}")
        gone, _ = wait_allocations(api, job, older_gone(version), 60, "rid of older versions")
        time.sleep(BASELINE_S)  # load after the last old container went
    report = loop.report
    assert report is not None
    details = allocation_details(api, job)
    entries = read_access(dc, host, wall - (t0 - report.started))
    access = attribute(entries, details, version)
    delete_job(api, job)
    bounds = [("before_submit", report.started), ("running", t0)]
    if strategy != "rolling":
        bounds += [("blocked", marks_at["blocked"]), ("promoted", marks_at["promoted"])]
    bounds += [("after_successful", done), ("after_old_gone", gone)]
    summary = report.summary(t0)
    lags = [
        t for a in access["routing_after_stop"] for t in a["last_request_after_stop_s"].values()
    ]
    phases = _by_phase(report, bounds)
    held = marks_at["promoted"] - marks_at["blocked"] if "blocked" in marks_at else 0.0
    new_share = None
    if "blocked" in phases:  # submit -> promote: the share of answers from the new version
        early = Counter(phases["running"]) + Counter(phases["blocked"])
        early.pop("failed", None)
        new_share = round(early["v2"] / max(1, sum(early.values())), 3)  # its page says VERSION 2
    log(
        f"{strategy} {i + 1}: {report.failed} failed of {report.total} requests "
        f"({report.rate:.0f}/s) {summary['failures_by_kind']}, stale keep-alive retried "
        f"{report.stale_keepalive_retried}; deployed in {done - t0 - held:.2f} s "
        f"(+{held:.1f} s waiting for the promote), by phase {phases}, load {load[0]}"
    )
    return {
        "failed": report.failed,
        "requests": report.total,
        "requests_per_s": round(report.rate, 1),
        "submit_to_successful_s": round(done - t0 - held, 3),
        "waited_for_promote_s": round(held, 3),
        "new_version_share_before_promote": new_share,
        "failures_by_kind": summary["failures_by_kind"],
        "by_phase": phases,
        "routed_after_stop_max_s": max(lags) if lags else None,
        "bad_requests_in_access_logs": len(access["bad_requests"]),
        "ingress": access,
        "phases_s_after_submit": {name: round(t - t0, 3) for name, t in bounds},
        "replaced_stop_to_killed": stop_to_killed(details, version, wall),
        "load": summary,
        "load_average": {"before": load, "after": load_average()},
    }


# --- 3. revert after a failing health check ----------------------------------------------
def revert_round(dc: DeployCluster, i: int) -> dict[str, Any]:
    api, job = dc.api, f"revert-{i}"
    update = {
        "max_parallel": REVERT_PARALLEL,
        "min_healthy_time": "1s",
        "healthy_deadline": f"{REVERT_DEADLINE:g}s",
        "auto_revert": True,
    }
    _deployed(dc, web_job(job, "1", REVERT_REPLICAS, **update))
    load = load_average()
    t0, wall, version = submit(
        api, web_job(job, "2", REVERT_REPLICAS, check_path="/missing", **update)
    )
    dep = deployment_for(api, job, version)
    failed_seen, failed = wait_deployment(api, dep["id"], ("failed",), DEPLOY_TIMEOUT)
    if failed["status"] != "failed" or failed.get("revert_version") is None:
        raise RuntimeError(f"{job} v{version}: {failed['status']}: {failed['status_description']}")
    rev = failed["revert_version"]
    rev_seen, rev_doc = wait_reverted(api, job, rev, DEPLOY_TIMEOUT)
    if rev_doc["status"] != "successful":
        raise RuntimeError(f"{job} v{rev}: {rev_doc['status']}: {rev_doc['status_description']}")
    healthy_seen, _ = wait_allocations(
        api, job, all_healthy(rev, REVERT_REPLICAS), 60, "all healthy on the reverted version"
    )
    total = healthy_seen - t0
    details = allocation_details(api, job)
    delete_job(api, job)
    bad = [marks(d, wall) for d in details if d.get("job_version") == version]
    good = version_marks(details, rev, wall)
    first_failing = min((m["check_failing"] for m in bad if "check_failing" in m), default=math.nan)
    starts = start_times(good, MHT)
    floor = floor_of(starts, MHT, math.ceil(REVERT_REPLICAS / REVERT_PARALLEL))
    floor_s = REVERT_DEADLINE + floor["floor_s"]

    def first(rows: list[dict[str, Any]], key: str) -> float | None:
        vals = [r[key] for r in rows if key in r]
        return round(min(vals), 3) if vals else None

    def last(rows: list[dict[str, Any]], key: str) -> float | None:
        vals = [r[key] for r in rows if key in r]
        return round(max(vals), 3) if vals else None

    timeline = {
        "failing_version_placed": first(bad, "placed"),
        "first_check_failing": round(first_failing, 3),
        "healthy_deadline_missed": first(bad, "unhealthy"),
        "deployment_failed": round(failed["modify_time"] / 1000.0 - wall, 3),
        "failed_seen_by_client": round(failed_seen - t0, 3),
        "reverted_deployment_created": round(rev_doc["create_time"] / 1000.0 - wall, 3),
        "reverted_first_placed": first(good, "placed"),
        "reverted_last_placed": last(good, "placed"),
        "reverted_last_healthy": last(good, "healthy"),
        "reverted_successful": round(rev_doc["modify_time"] / 1000.0 - wall, 3),
        "reverted_successful_seen": round(rev_seen - t0, 3),
        "all_healthy_seen": round(total, 3),
    }
    log(
        f"revert {i + 1}: {total:.2f} s from the submit, "
        f"{total - first_failing:.2f} s from the first failing check; {timeline}"
    )
    return {
        "submit_to_healthy_s": round(total, 3),
        "first_failing_check_to_healthy_s": round(total - first_failing, 3),
        "ratio": round(total / floor_s, 3) if floor_s > 0 else math.nan,
        "floor_s": round(floor_s, 3),
        "floor": {**floor, "healthy_deadline_s": REVERT_DEADLINE},
        "healthy_deadline_s": REVERT_DEADLINE,
        "reverted_version": rev,
        "failed_description": failed.get("status_description"),
        "reverted_allocations_placed": len(good),
        "marks": timeline,
        "failing_allocations": bad,
        "reverted_allocations": good,
        "load_average": {"before": load, "after": load_average()},
    }
