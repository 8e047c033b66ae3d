"""Workloads on real Docker: submit-to-running latency, and an agent with 50 containers.

Two measurements, each on its own cluster of real `heroctld` processes whose
embedded agents run containers of the local image `heroctl-test/busybox:latest`
(never pulled) on the machine's Docker engine, published on 127.0.0.1:

* **submit to running**: on a 1-server cluster (`BENCH_WORKLOADS_SERVERS=3`
  for three), the time from `POST /v1/jobs` to every allocation of the job
  reported `running`, watched with blocking queries on
  `GET /v1/allocations?job=NAME&index=N&wait=5s` (no sleep loop). A 1-replica
  job ~10 times (target p50 <= 1.0 s) and a 10-replica job ~4 times (target
  p50 <= 3 s); the task is `httpd` with a port and no health check, so health
  does not gate "running". Between rounds the job is deleted and its
  containers are waited out. Every round is broken down from the allocation's
  events (`placed`, `started`: server and agent clocks, same machine) and the
  containers' own `Created`/`StartedAt`, so a miss says where the time went:
  API+raft+scheduler (submit -> placed), agent notice + Docker create
  (placed -> created), Docker start (created -> started), report back
  (started -> seen running). Tasks ask for the jobspec's default 100 MHz:
  the docker driver makes that a hard CFS quota, which also throttles the
  container's own start-up (see `service_job`).
* **an agent running 50 containers**: first the same server with
  `--no-agent`, idle (the baseline); then one server with its agent (offering
  8000 MHz / 4096 MB), idle RSS and CPU; then one 50-replica job, each task an
  `httpd` with an http check at the default interval (10 s), waited until all
  run and are healthy; then the server process's RSS and its CPU use over
  ~30 s of steady state, as % of one core (targets: <= 100 MB, <= 5 %). The
  agent runs inside the server process, so no-agent / idle / with 50 show the
  agent's share. CPU is also split per thread (from /proc/PID/task, named by
  one `py-spy dump` when py-spy is installed: raft-tick, MainThread = the
  event loop with the API and the agent's loops, agent-driver = Docker calls,
  logs = log followers).

The machine has 2 cores and is shared (other tests, other benchmarks): every
phase records the load average, and CPU is also given as CPU-seconds so it
can be compared between runs. `BENCH_PROFILE=1` (with py-spy installed) also
samples the server during the idle and steady windows (bench.common.profiled).

`python -m bench.bench_workloads [--quick]` runs it alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_ENV,
    CLK_TCK,
    ROOT,
    CpuWatch,
    load_average,
    log,
    metric,
    percentile,
    proc_status,
    profiled,
    running_cluster,
)
from tests.support.cluster import Cluster, Server, wait_until

IMAGE = "heroctl-test/busybox:latest"
HTTPD = ["httpd", "-f", "-p", "8080", "-h", "/var/www"]
ONE_TARGET = "<= 1.0"
TEN_TARGET = "<= 3"
RSS_TARGET = "<= 100"
CPU_TARGET = "<= 5"
CPU_MHZ = 100


# --- the Docker side -----------------------------------------------------------------------
def _docker() -> Any:
    import docker  # noqa: PLC0415 - only this benchmark needs it

    return docker.from_env(timeout=60)


def ensure_docker() -> None:
    """A Docker engine that answers, and the local test image (built, never pulled)."""
    for script in ("ensure-docker.sh", "build-test-image.sh"):
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / script)], capture_output=True, timeout=180
        )
        if done.returncode != 0:
            raise RuntimeError(f"scripts/{script} failed: {done.stderr.decode()[-400:]}")


def _ts(text: str | None) -> float | None:
    """Docker's RFC 3339 time (nanoseconds) as unix seconds."""
    if not text or text.startswith("0001-"):
        return None
    base, _, frac = text.rstrip("Z").partition(".")
    stamp = datetime.fromisoformat(base + "+00:00").timestamp()
    return stamp + float("0." + frac[:9]) if frac else stamp


def containers_of(client: Any, job: str, nodes: set[str]) -> list[Any]:
    found = client.containers.list(all=True, filters={"label": f"heroctl.job={job}"})
    return [c for c in found if c.labels.get("heroctl.node") in nodes]


# --- the API side ---------------------------------------------------------------------------
def service_job(name: str, count: int, *, check: bool) -> dict[str, Any]:
    task: dict[str, Any] = {
        "name": "web",
        "driver": "docker",
        "image": IMAGE,
        "command": HTTPD,
        # The jobspec's default cpu ask. Far smaller asks start slowly: the
        # driver turns MHz into a hard CFS quota (nano_cpus) and the
        # container's own start-up (runc init, docker-init) runs inside it,
        # e.g. 20 MHz -> 0.01 core -> ~1.6 s for `docker start` alone here.
        "resources": {"cpu": CPU_MHZ, "memory": 16},
        "ports": [{"name": "http", "to": 8080}],
        "kill_timeout": "1s",
    }
    if check:
        task["check"] = {"type": "http", "port": "http", "path": "/"}  # default interval
    return {
        "name": name,
        "type": "service",
        "meta": {"owner": "bench"},
        "groups": [
            {
                "name": "app",
                "count": count,
                "update": {"min_healthy_time": "1s", "healthy_deadline": "120s"},
                "tasks": [task],
            }
        ],
    }


def wait_allocs(
    server: Server, job: str, count: int, timeout: float, *, healthy: bool = False
) -> tuple[float, list[dict[str, Any]], int]:
    """Block on the job's allocations until `count` of them (and no more) want
    to run and report `running` (and `healthy` if asked). Returns (monotonic
    time seen, the allocations, number of queries)."""
    deadline = time.monotonic() + timeout
    index = 0
    queries = 0
    while True:
        r = server.get(f"/v1/allocations?job={job}&index={index}&wait=5s", timeout=20)
        seen = time.monotonic()
        queries += 1
        if r.status != 200:
            raise RuntimeError(f"GET /v1/allocations?job={job}: {r.status} {r.raw[:300]!r}")
        index = int(r.header("X-HeroCtl-Index") or 0)
        live = [a for a in r.body if a["desired_status"] == "run"]
        failed = [a for a in live if a["status"] in ("failed", "lost")]
        if failed:
            raise RuntimeError(f"{job}: {len(failed)} allocation(s) {failed[0]['status']}")
        good = [
            a for a in live if a["status"] == "running" and (not healthy or a["healthy"] is True)
        ]
        if len(live) == count and len(good) == count:
            return seen, live, queries
        if seen > deadline:
            what = "healthy" if healthy else "running"
            raise TimeoutError(f"{job}: {len(good)}/{count} {what} after {timeout:g}s")


def delete_and_wait_gone(
    server: Server, client: Any, job: str, nodes: set[str], timeout: float = 60
) -> float:
    t0 = time.monotonic()
    r = server.delete(f"/v1/jobs/{job}")
    if r.status != 200:
        raise RuntimeError(f"DELETE /v1/jobs/{job}: {r.status} {r.raw[:300]!r}")
    wait_until(
        lambda: not containers_of(client, job, nodes),
        timeout,
        0.2,
        f"every container of {job} removed",
    )
    return time.monotonic() - t0


def wait_nodes(server: Server, count: int, timeout: float = 60) -> None:
    def ready() -> bool:
        r = server.get("/v1/nodes", timeout=5)
        return r.status == 200 and sum(n["status"] == "ready" for n in r.body) >= count

    wait_until(ready, timeout, 0.2, f"{count} ready nodes")


@contextlib.contextmanager
def agent_cluster(size: int, name: str, **kw: Any) -> Iterator[Cluster]:
    """Started servers with agents, ready nodes; always stopped, their
    containers removed (Cluster.stop), logs kept when something failed."""
    root = Path(tempfile.mkdtemp(prefix=f"heroctl-bench-{name}-"))
    cluster = Cluster(root, size, agent=True, env=dict(BENCH_ENV), **kw)
    ok = False
    try:
        log(f"{name}: starting a {size}-server cluster with agents in {root}")
        cluster.start()
        wait_nodes(cluster.servers[0], size)
        yield cluster
        ok = True
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        for s in cluster.servers:
            with contextlib.suppress(Exception):
                s.kill()
            with contextlib.suppress(Exception):
                s.remove_tasks()
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for s in cluster.servers:
                tail = s.log().splitlines()[-20:]
                log(f"{name}: {s.name} log tail:\n    " + "\n    ".join(tail))
            log(f"{name}: failed; logs kept in {root}")


# --- submit to running ----------------------------------------------------------------------
def _event_ts(detail: dict[str, Any], kind: str) -> float | None:
    for ev in detail.get("events") or []:
        if ev.get("type") == kind and ev.get("ts"):
            return ev["ts"] / 1000.0
    return None


def _breakdown(
    server: Server, client: Any, job: str, allocs: list[dict[str, Any]], nodes: set[str], t0: float
) -> dict[str, Any]:
    """Per stage, ms since the POST was sent (wall clock; [first, last] over the
    allocations): placed (server event), container created and started (Docker),
    task started (agent event, after the Docker calls returned)."""
    stages: dict[str, list[float]] = {
        "placed": [],
        "created": [],
        "docker_started": [],
        "agent_started": [],
    }
    by_alloc = {c.labels.get("heroctl.alloc_id"): c for c in containers_of(client, job, nodes)}
    for a in allocs:
        detail = server.get(f"/v1/allocations/{a['id']}").body or {}
        c = by_alloc.get(a["id"])
        marks = {
            "placed": _event_ts(detail, "placed"),
            "agent_started": _event_ts(detail, "started"),
            "created": _ts(c.attrs.get("Created")) if c else None,
            "docker_started": _ts((c.attrs.get("State") or {}).get("StartedAt")) if c else None,
        }
        for k, v in marks.items():
            if v is not None:
                stages[k].append(round((v - t0) * 1000.0, 1))
    out: dict[str, Any] = {k: [min(v), max(v)] if v else None for k, v in stages.items()}
    if len(allocs) > 1:  # every value, to see how the starts queue up
        out["each"] = {k: sorted(v) for k, v in stages.items() if k != "placed"}
    return out


def submit_rounds(
    server: Server, client: Any, nodes: set[str], count: int, rounds: int, tag: str
) -> dict[str, Any]:
    times: list[float] = []
    details: list[dict[str, Any]] = []
    for i in range(rounds):
        job = f"bw-{tag}-{i}"
        spec = service_job(job, count, check=False)
        t0_wall = time.time()
        t0 = time.monotonic()
        r = server.post("/v1/jobs", spec, timeout=30)
        post_ms = (time.monotonic() - t0) * 1000.0
        if r.status not in (200, 201):
            raise RuntimeError(f"POST /v1/jobs {job}: {r.status} {r.raw[:300]!r}")
        seen, allocs, queries = wait_allocs(server, job, count, 60)
        took = seen - t0
        times.append(took)
        row = {
            "s": round(took, 3),
            "post_ms": round(post_ms, 1),
            "queries": queries,
            "ms_after_post": _breakdown(server, client, job, allocs, nodes, t0_wall),
        }
        row["delete_to_gone_s"] = round(delete_and_wait_gone(server, client, job, nodes), 2)
        row["load1"] = load_average()[0]
        details.append(row)
        stages = {k: v for k, v in row["ms_after_post"].items() if k != "each"}
        log(f"{tag} {i + 1}/{rounds}: {took:.3f} s to {count} running; ms after POST {stages}")
    return {
        "p50": percentile(times, 50),
        "max": max(times),
        "stages_ms_median": _stage_medians(details),
        "rounds": details,
    }


def _stage_medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over the rounds of each stage's [first, last] allocation, ms after
    the POST; `seen_running` is when the client saw every allocation running."""
    out: dict[str, Any] = {}
    for stage in ("placed", "created", "docker_started", "agent_started"):
        pairs = [r["ms_after_post"][stage] for r in rows if r["ms_after_post"].get(stage)]
        if pairs:
            out[stage] = [round(percentile([p[j] for p in pairs], 50), 1) for j in (0, 1)]
    out["seen_running"] = round(percentile([r["s"] * 1000.0 for r in rows], 50), 1)
    return out


def measure_latency(quick: bool, size: int) -> dict[str, Any]:
    ones = 3 if quick else 10
    tens = 1 if quick else 4
    client = _docker()
    try:
        with agent_cluster(size, "workloads-latency") as cluster:
            api = cluster.servers[0]
            nodes = {s.node_id for s in cluster.servers if s.node_id}
            # One throwaway round: first-use costs (image lookup caches,
            # connection pools, the first container on a fresh node) are not
            # what this measures.
            submit_rounds(api, client, nodes, 1, 1, "warm")
            load_before = load_average()
            one = submit_rounds(api, client, nodes, 1, ones, "one")
            ten = submit_rounds(api, client, nodes, 10, tens, "ten")
            return {
                "one": one,
                "ten": ten,
                "servers": size,
                "load_average": {"before": load_before, "after": load_average()},
            }
    finally:
        client.close()


# --- an agent with 50 containers ------------------------------------------------------------
def _rss_mb(pid: int) -> dict[str, float]:
    st = proc_status(pid)
    out = {k: round(v / 1024.0, 1) for k, v in st.items() if k != "Threads"}
    out["threads"] = st.get("Threads", 0)
    return out


def _thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (utime + stime) of every thread of `pid`, by thread id."""
    out: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


_DUMP_THREAD = re.compile(r'^Thread (\d+) \([a-z]+\): "(.*)"$', re.M)
_PER_INSTANCE = re.compile(r"-[0-9a-f]{8}-.*$|_\d+$")


def _thread_names(pid: int) -> dict[int, str]:
    """Thread id -> Python thread name, from one `py-spy dump` (when installed);
    names made per task or per worker are grouped (`logs-<alloc>-web-stdout` ->
    `logs`, `agent-driver_3` -> `agent-driver`)."""
    exe = Path(sys.executable).with_name("py-spy")
    spy = str(exe) if exe.exists() else shutil.which("py-spy")
    names = {pid: "MainThread"}
    if spy is None:
        return names
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        text = subprocess.run(
            [spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=20
        ).stdout
        for tid, name in _DUMP_THREAD.findall(text):
            names[int(tid)] = _PER_INSTANCE.sub("", name)
    return names


def _by_thread(
    pid: int, before: dict[int, float], after: dict[int, float], wall: float
) -> dict[str, Any]:
    """% of one core per thread group over the window (threads unnamed without py-spy)."""
    names = _thread_names(pid)
    groups: dict[str, float] = {}
    for tid, cpu in after.items():
        name = names.get(tid, "other")
        groups[name] = groups.get(name, 0.0) + cpu - before.get(tid, 0.0)
    return {n: round(100.0 * v / wall, 2) for n, v in sorted(groups.items(), key=lambda kv: -kv[1])}


def _cpu_window(pid: int, seconds: float, name: str) -> dict[str, Any]:
    watch = CpuWatch({"server": pid})
    load0 = load_average()
    with profiled(name, pid) as prof:
        threads0 = _thread_cpu(pid)
        watch.begin()
        time.sleep(seconds)  # a measurement window, not a wait for a condition
        res = watch.end()
        threads1 = _thread_cpu(pid)
    res["cpu_s"] = round(res["cpu_pct"].get("server", float("nan")) / 100.0 * res["wall_s"], 3)
    res["threads_cpu_pct"] = _by_thread(pid, threads0, threads1, res["wall_s"])
    res["load_average"] = {"before": load0, "after": load_average()}
    if prof:
        res["profile"] = prof
    return res


def no_agent_rss() -> dict[str, float]:
    """The same server without its agent (`--no-agent`), idle: the baseline
    that shows what the agent itself costs."""
    with running_cluster(1, "workloads-noagent") as cluster:
        server = cluster.servers[0]
        assert server.proc is not None
        time.sleep(3.0)  # the same settling time as the agent's idle measurement
        return _rss_mb(server.proc.pid)


def measure_fifty(quick: bool, replicas: int = 50) -> dict[str, Any]:
    window = 10.0 if quick else 30.0
    idle_window = 5.0 if quick else 10.0
    baseline = no_agent_rss()
    log(f"50: server without agent, idle RSS {baseline}")
    client = _docker()
    try:
        with agent_cluster(1, "workloads-50", agent_cpu=8000, agent_memory=4096) as cluster:
            api = cluster.servers[0]
            assert api.proc is not None
            pid = api.proc.pid
            nodes = {s.node_id for s in cluster.servers if s.node_id}
            time.sleep(3.0)  # let start-up work (first heartbeats, imports) settle
            idle_rss = _rss_mb(pid)
            idle_cpu = _cpu_window(pid, idle_window, "workloads-idle")
            log(f"50: idle RSS {idle_rss}, CPU {idle_cpu['cpu_pct']}")
            log(f"50: idle CPU by thread (% core) {idle_cpu['threads_cpu_pct']}")

            job = "bw-fifty"
            t0 = time.monotonic()
            r = api.post("/v1/jobs", service_job(job, replicas, check=True), timeout=30)
            if r.status not in (200, 201):
                raise RuntimeError(f"POST /v1/jobs {job}: {r.status} {r.raw[:300]!r}")
            seen, _, _ = wait_allocs(api, job, replicas, 180)
            to_running = seen - t0
            seen_h, _, _ = wait_allocs(api, job, replicas, 120, healthy=True)
            to_healthy = seen_h - t0
            running = [c for c in containers_of(client, job, nodes) if c.status == "running"]
            log(
                f"50: {replicas} running after {to_running:.1f} s, healthy after "
                f"{to_healthy:.1f} s ({len(running)} containers running)"
            )
            time.sleep(3.0)  # past the start burst (reports, first metrics samples)
            rss_start = _rss_mb(pid)
            steady = _cpu_window(pid, window, "workloads-50")
            rss_end = _rss_mb(pid)
            still = [c for c in containers_of(client, job, nodes) if c.status == "running"]
            allocs = api.get(f"/v1/allocations?job={job}").body
            log(f"50: steady RSS {rss_end}, CPU {steady['cpu_pct']}")
            log(f"50: steady CPU by thread (% core) {steady['threads_cpu_pct']}")
            return {
                "replicas": replicas,
                "containers_running": len(still),
                "allocations_running": sum(
                    a["status"] == "running" and a["desired_status"] == "run" for a in allocs
                ),
                "to_running_s": round(to_running, 2),
                "to_healthy_s": round(to_healthy, 2),
                "no_agent_idle_rss_mb": baseline,
                "idle": {"rss_mb": idle_rss, "cpu": idle_cpu},
                "steady": {"rss_mb_start": rss_start, "rss_mb_end": rss_end, "cpu": steady},
            }
    finally:
        client.close()


# --- the benchmark ----------------------------------------------------------------------------
def run(quick: bool = False) -> dict[str, Any]:
    ensure_docker()
    size = int(os.environ.get("BENCH_WORKLOADS_SERVERS", "1"))
    load_start = load_average()
    lat = measure_latency(quick, size)
    fifty = measure_fifty(quick)
    steady_cpu = fifty["steady"]["cpu"]
    rss = max(fifty["steady"]["rss_mb_start"]["VmRSS"], fifty["steady"]["rss_mb_end"]["VmRSS"])
    return {
        "submit_1_p50_s": metric(lat["one"]["p50"], "s", ONE_TARGET),
        "submit_1_max_s": metric(lat["one"]["max"], "s"),
        "submit_10_p50_s": metric(lat["ten"]["p50"], "s", TEN_TARGET),
        "submit_10_max_s": metric(lat["ten"]["max"], "s"),
        "agent50_rss_mb": metric(rss, "MB", RSS_TARGET),
        "agent50_idle_rss_mb": metric(fifty["idle"]["rss_mb"]["VmRSS"], "MB"),
        "server_no_agent_rss_mb": metric(fifty["no_agent_idle_rss_mb"]["VmRSS"], "MB"),
        "agent50_cpu_pct": metric(
            steady_cpu["cpu_pct"].get("server", float("nan")), "% core", CPU_TARGET
        ),
        "agent50_idle_cpu_pct": metric(
            fifty["idle"]["cpu"]["cpu_pct"].get("server", float("nan")), "% core"
        ),
        "agent50_to_running_s": metric(fifty["to_running_s"], "s"),
        "load_average_1m": metric(load_start[0], ""),
        "_latency": lat,
        "_fifty": fifty,
        "_machine": {
            "cores": os.cpu_count(),
            "load_average": {"start": load_start, "end": load_average()},
            "note": "shared 2-core machine: other tests run at the same time; numbers are noisy",
        },
    }


if __name__ == "__main__":
    result = run(quick="--quick" in sys.argv)
    from bench.run import metric_table

    print(metric_table("workloads", result))
    lat, fifty = result["_latency"], result["_fifty"]
    summary = {
        "stages_ms_median": {k: lat[k]["stages_ms_median"] for k in ("one", "ten")},
        "latency_load_average": lat["load_average"],
        "fifty": {k: v for k, v in fifty.items() if k not in ("idle", "steady")},
        "idle_cpu_by_thread_pct": fifty["idle"]["cpu"]["threads_cpu_pct"],
        "steady_cpu_by_thread_pct": fifty["steady"]["cpu"]["threads_cpu_pct"],
        "steady_load_average": fifty["steady"]["cpu"]["load_average"],
        "machine": result["_machine"],
    }
    print(json.dumps(summary, indent=1, default=str))
