"""Deployments on real containers: how close a rolling update gets to its
floor, how many requests fail through the ingress during each strategy, and
how fast a failing version is reverted.

One cluster for every phase: 3 real heroctld servers (plain HTTP API) with
their embedded agents running Docker containers of the local image
`heroctl-test/busybox:latest` (never pulled) and each its own nginx ingress
on a high 127.0.0.1 port (`bench.deployments_cluster`). Every task is busybox
httpd answering "<alloc id> <VERSION>", 500 MHz (a hard CFS quota: enough to
start fast), with an http check on `/` every second. Each phase uses its own
job and deletes it afterwards.

1. **Rolling update, total / floor** (no ingress route: the deployment
   machinery alone). A job of 10 replicas, `update: {max_parallel: 2,
   min_healthy_time: 1s, healthy_deadline: 60s}`. v1 is submitted and its
   deployment (`GET /v1/deployments?job=`) waited until `successful`; then
   v2 (env VERSION changed), timed from the moment its `POST /v1/jobs` is
   sent to the moment the long poll `GET /v1/deployments/:id?index=N&wait=`
   returns `successful` (no sleep loop). Full: 3 rounds (v2, v3, v4); quick: 1.

   **The floor** is what the update would take if nothing but the replicas'
   own start and `min_healthy_time` cost time: batches x (start +
   min_healthy_time), batches = ceil(10 / 2) = 5. `start` is measured on the
   round's own new allocations from their events (bench.deployments_timeline):
   per allocation, `placed` (the server's plan) -> `allocation is healthy`
   (the agent) minus min_healthy_time, i.e. placed -> its checks began to
   pass: the agent noticing the placement, Docker create + start, and the
   check loop's first passing check (0.2 s after the task runs, then every
   interval). The median over the 10 is `start`; the floor with the fastest
   one is in the details too. Metric: total / floor, target <= 1.3.

   **Where the time went**: per batch (allocations in placement order, 2 at
   a time) the placement times, the scheduler delay (the healthy report that
   freed a slot -> the next placement; the first batch: submit -> placed),
   container start (placed -> started), check wait (started -> passing),
   min_healthy, healthy times; and the critical path: from the last replica to
   turn healthy back through the replica whose healthy report let it be placed
   to the submit, along which the total splits exactly into scheduler delay,
   container start, check wait and min_healthy_time, plus the tail (last
   healthy -> `successful` on the server -> seen by the long poll). The
   rolling update is a sliding window (a replacement is placed as soon as one
   of the 2 in flight turns healthy), not lock-step batches. The replaced
   allocations' stop -> killed times are there too.

2. **Failed requests during each strategy, under load through the ingress**
   (`bench.deployments_load`): for `rolling`, `canary` (`canary: 1`) and
   `blue-green` (a full new set), a job of 4 replicas (`max_parallel: 1`)
   serving a host through every node's ingress. Once v1 is deployed and
   every node answers, a separate process runs 9 threads, per node: `GET /`
   on one kept-alive connection and `GET /` on a new connection per
   request, each paced to a request every 20 ms, and `POST /cgi-bin/slow`
   (answered after 0.3 s, so requests are in flight when a container stops;
   nginx never passes a POST it sent on to another upstream, as it does a
   failed GET) back to back; all with a `Host:` header, from 1 s before the
   submit of v2 until the deployment is successful *and* every replaced
   container is gone, plus 1 s. A canary or blue-green deployment is left
   `blocked-on-promotion` for 2 s under that load (as a person would look
   before promoting), then promoted with `POST /v1/deployments/:id/promote`.
   Metric per strategy: failed requests (non-200 answers and connection
   errors; a kept-alive connection that nginx closed while idle is retried
   once on a new connection, as HTTP clients do, and counted apart), target
   0 (written "<= 0": bench.common.check has no "==", and a count is never
   negative); and the deployment's time, submit to successful without the
   2 s it waited for the promote. Details: total requests and requests/s,
   failures by kind (http_502/503/504, refused, reset, closed, timeout), by
   mode and by node, the answers per version and the failures in each phase
   of the deployment (before the submit, running, blocked on promotion,
   after the promote, after successful, after the old containers are gone),
   and from every node's ingress access log (`bench.deployments_access`)
   the allocation each bad request went to, how long after the plan had
   stopped it the request was sent and how soon after it its container was
   gone, and per replaced allocation how long each node's nginx kept sending
   it requests after the stop (the slowest of a round is the metric
   `routed_after_stop_<strategy>_s`); and a 0.5 s timeline. `new_version_share_before_promote`: of the answers between the
   submit and the promote, the share the new version served (a canary: its
   share of the upstreams; blue-green: whether the new set took traffic
   before it was promoted). Full: 2 rounds per strategy (failures summed,
   times the median); quick: 1.

3. **Revert after a failing health check**: a job of 4 replicas,
   `update: {max_parallel: 2, min_healthy_time: 1s, healthy_deadline: 5s,
   auto_revert: true}` (the short healthy_deadline is what bounds this);
   v1 deployed; v2 checks a missing path (404: every check fails). Timed from
   the submit of v2, and from the first `check failing` event of a v2
   allocation, until the deployment of the reverted version (v3, v1's spec) is
   successful and every live replica is of v3 and healthy. The details split
   it: v2 placed, first failing check, healthy_deadline missed (`allocation
   not healthy within 5s`), deployment failed, v3's deployment created, v3
   placed and healthy, successful; and a reference floor, healthy_deadline +
   ceil(4 / 2) x (start + min_healthy_time): v3 replaces all 4 replicas, the
   2 failed v2 ones and the 2 v1 ones still running (an older job version,
   though the same spec), 2 at a time. Full: 2 rounds; quick: 1.

The machine has 2 cores and is shared: the load average is recorded with
every phase. Needs Docker and nginx. `python -m bench.bench_deployments
[--quick]` runs it alone.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from bench.common import ROOT, load_average, log, median, metric
from bench.deployments_cluster import deploy_cluster
from bench.deployments_phases import revert_round, rolling_round, strategy_round

RATIO_TARGET = "<= 1.3"
FAILED_TARGET = "<= 0"  # "== 0": a count of failures is never negative
STRATEGIES = ("rolling", "canary", "blue-green")


def _tree_state() -> dict[str, Any]:
    """The commit and how many files differ from it (the daemons run the tree)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.splitlines()
    except OSError:
        return {}
    return {"commit": head, "modified_files": len(dirty)}


def _rounds(
    out: dict[str, Any], name: str, count: int, fn: Callable[..., dict[str, Any]], *args: Any
) -> None:
    """Run ``count`` rounds of a phase; a failure is recorded (its metrics are
    NaN: FAIL) and the next phase still runs."""
    rows: list[dict[str, Any]] = []
    out[name] = rows
    for i in range(count):
        try:
            rows.append(fn(*args, i))
        except Exception as e:  # noqa: BLE001 - one phase must not hide the others
            log(f"deployments: {name} round {i + 1} failed: {e!r}")
            rows.append({"error": repr(e)[:2000]})
            return


def measure(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"load_average_start": load_average(), "tree": _tree_state()}
    with deploy_cluster(3) as dc:
        _rounds(out, "rolling", 1 if quick else 3, rolling_round, dc)
        for strategy in STRATEGIES:
            _rounds(out, f"load_{strategy}", 1 if quick else 2, strategy_round, dc, strategy)
        _rounds(out, "revert", 1 if quick else 2, revert_round, dc)
    out["load_average_end"] = load_average()
    return out


def _values(rows: list[dict[str, Any]], key: str) -> list[float]:
    return [r[key] for r in rows if key in r and isinstance(r[key], int | float)]


def _med(rows: list[dict[str, Any]], key: str) -> float:
    vals = _values(rows, key)
    return median(vals) if vals and len(vals) == len(rows) else math.nan


def _sum(rows: list[dict[str, Any]], key: str) -> float:
    vals = _values(rows, key)
    return float(sum(vals)) if rows and len(vals) == len(rows) else math.nan


def run(quick: bool = False) -> dict[str, Any]:
    m = measure(quick)
    roll = m["rolling"]
    out: dict[str, Any] = {
        "rolling10_total_over_floor": metric(_med(roll, "ratio"), "x", RATIO_TARGET),
        "rolling10_total_s": metric(_med(roll, "total_s"), "s"),
        "rolling10_floor_s": metric(_med(roll, "floor_s"), "s"),
        "rolling10_start_s": metric(_med(roll, "start_s"), "s"),
    }
    for strategy in STRATEGIES:
        rows = m[f"load_{strategy}"]
        key = strategy.replace("-", "_")
        requests = _sum(rows, "requests")
        rate = _med(rows, "requests_per_s")
        out[f"failed_requests_{key}"] = metric(_sum(rows, "failed"), "", FAILED_TARGET)
        out[f"requests_{key}"] = metric(f"{requests:,.0f} at {rate:,.0f}/s", "")
        out[f"deploy_{key}_s"] = metric(_med(rows, "submit_to_successful_s"), "s")
        out[f"routed_after_stop_{key}_s"] = metric(_med(rows, "routed_after_stop_max_s"), "s")
        if strategy != "rolling":
            out[f"new_version_share_before_promote_{key}"] = metric(
                _med(rows, "new_version_share_before_promote"), ""
            )
    rev = m["revert"]
    out["revert_submit_to_healthy_s"] = metric(_med(rev, "submit_to_healthy_s"), "s")
    out["revert_failing_check_to_healthy_s"] = metric(
        _med(rev, "first_failing_check_to_healthy_s"), "s"
    )
    out["revert_total_over_floor"] = metric(_med(rev, "ratio"), "x")
    out["load_average_1m"] = metric(m["load_average_start"][0], "")
    for name in ("rolling", *(f"load_{s}" for s in STRATEGIES), "revert"):
        errors = [r["error"] for r in m[name] if "error" in r]
        if errors:
            out[f"{name}_error"] = metric(errors[0][:200])
    out["_details"] = m
    out["_machine"] = {
        "cores": os.cpu_count(),
        "load_average": {"start": m["load_average_start"], "end": m["load_average_end"]},
        "note": "shared 2-core machine: other tests run at the same time; numbers are noisy",
    }
    return out


if __name__ == "__main__":
    result = run(quick="--quick" in sys.argv)
    from bench.run import metric_table

    print(metric_table("deployments", result))
    details = result["_details"]
    brief = {
        "rolling": [
            {k: r.get(k) for k in ("ratio", "total_s", "floor", "critical_path", "tail", "error")}
            for r in details["rolling"]
        ],
        "load": {
            s: [
                {
                    "failed": r.get("failed"),
                    "failures_by_kind": r.get("failures_by_kind"),
                    "by_phase": r.get("by_phase"),
                    "bad_requests": (r.get("ingress") or {}).get("bad_requests"),
                    "routed_after_stop_max_s": r.get("routed_after_stop_max_s"),
                    "replaced_stop_to_killed": r.get("replaced_stop_to_killed"),
                    "error": r.get("error"),
                }
                for r in details[f"load_{s}"]
            ]
            for s in STRATEGIES
        },
        "revert": [
            {k: r.get(k) for k in ("submit_to_healthy_s", "marks", "error")}
            for r in details["revert"]
        ],
        "machine": result["_machine"],
        "tree": details["tree"],
    }
    print(json.dumps(brief, indent=1, default=str))
