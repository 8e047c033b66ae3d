"""Shared benchmark tools: metrics, a real cluster, process stats and a load generator.

Metric format (what a `run()` returns and `bench.run` tabulates): a dict of
name -> metric, where a metric is either a plain number/string (shown without
a target) or a dict made by `metric()`: `{"value", "unit", "target", "pass"}`.
`target` is a string like ">= 3000" or "<= 3"; `pass` is computed from it when
missing. Keys starting with "_" hold details (not tabulated, kept in the JSON).

The load generator runs in separate processes (multiprocessing, spawn), each an
asyncio loop with one kept-alive connection per client (`bench.lean_http`:
prebuilt requests, so the generators take little of the CPU they share with
the servers), so the client side does not share a GIL with the
servers or with the benchmark driver. It reports its own CPU time, and
`CpuWatch` reports the servers' and the whole machine's, so a missed target
says where the CPU went.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import math
import multiprocessing as mp
import os
import queue
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.lean_http import LeanConnection, build_request, split_url
from tests.support.cluster import Cluster, Server

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def log(msg: str) -> None:
    """Progress goes to stderr; stdout is reserved for the result table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- metrics -----------------------------------------------------------------
def check(value: Any, target: str | None) -> bool | None:
    if target is None or not isinstance(value, int | float) or isinstance(value, bool):
        return None
    op, _, bound = target.strip().partition(" ")
    limit = float(bound)
    if math.isnan(value):
        return False
    return {">=": value >= limit, "<=": value <= limit, ">": value > limit, "<": value < limit}[op]


def metric(value: Any, unit: str = "", target: str | None = None, **extra: Any) -> dict[str, Any]:
    if isinstance(value, float):
        value = round(value, 3)
    out = {"value": value, "unit": unit, "target": target, "pass": check(value, target)}
    out.update(extra)
    return out


def percentile(values: list[float] | array, q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return percentile(values, 50)


# --- process and machine stats ------------------------------------------------
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, VmHWM in kB from /proc/PID/status."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM", "Threads"):
                out[key] = int(rest.split()[0])
    return out


def rss_mb(pid: int) -> float:
    return proc_status(pid)["VmRSS"] / 1024.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return float(total - idle), float(total)


class CpuWatch:
    """CPU use of some processes and of the machine between begin() and end()."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self._machine = (0.0, 0.0)
        self._t0 = 0.0
        self.result: dict[str, Any] = {}

    def _sample(self) -> dict[str, float]:
        out = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):
                out[name] = cpu_seconds(pid)
        return out

    def begin(self) -> None:
        self._t0 = time.monotonic()
        self._start = self._sample()
        self._machine = machine_cpu()

    def end(self) -> dict[str, Any]:
        wall = max(time.monotonic() - self._t0, 1e-9)
        now = self._sample()
        busy, total = machine_cpu()
        b0, t0 = self._machine
        self.result = {
            "wall_s": round(wall, 3),
            "cpu_pct": {
                n: round(100.0 * (now[n] - self._start[n]) / wall, 1)
                for n in now
                if n in self._start
            },
            "machine_busy_pct": round(100.0 * (busy - b0) / max(total - t0, 1.0), 1),
            "cores": os.cpu_count(),
        }
        return self.result


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- optional profiles (py-spy) -------------------------------------------------
PROFILE_DIR = ROOT / "bench" / "results" / "profiles"


def _pyspy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def summarize_profile(path: Path, top: int = 12) -> dict[str, Any]:
    """Per thread: share of samples and the functions with the most own samples."""
    threads: dict[str, Counter[str]] = {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        head = frames[0]
        thread = head.split("): ", 1)[1] if "): " in head else head
        leaf = frames[-1]
        if " (" in leaf:
            fn, loc = leaf.split(" (", 1)
            leaf = f"{fn} ({loc.split(':')[0].rsplit('/', 1)[-1]})"
        threads.setdefault(thread, Counter())[leaf] += int(count)
    total = sum(sum(c.values()) for c in threads.values()) or 1
    return {
        name: {
            "samples_pct": round(100.0 * sum(c.values()) / total, 1),
            "top_self_pct": {
                fn: round(100.0 * n / sum(c.values()), 1) for fn, n in c.most_common(top)
            },
        }
        for name, c in sorted(threads.items(), key=lambda kv: -sum(kv[1].values()))
    }


@contextlib.contextmanager
def profiled(name: str, pid: int | None) -> Iterator[dict[str, Any]]:
    """With BENCH_PROFILE=1 and py-spy installed, sample `pid` during the block
    (BENCH_PROFILE=gil: only samples holding the GIL, i.e. Python CPU time).

    The raw (collapsed-stack) profile goes to bench/results/profiles/ and a
    summary into the yielded dict (which ends up in the result's details).
    py-spy is an investigation tool, not a dependency: without it this is a no-op.
    """
    box: dict[str, Any] = {}
    exe = _pyspy()
    if not os.environ.get("BENCH_PROFILE") or pid is None:
        yield box
        return
    if exe is None:
        log("BENCH_PROFILE is set but py-spy is not installed (pip install py-spy)")
        yield box
        return
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    out = PROFILE_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}.txt"
    cmd = [
        exe,
        "record",
        "-p",
        str(pid),
        "-r",
        os.environ.get("BENCH_PROFILE_RATE", "100"),
        "--threads",
        "--nonblocking",
        *(["--gil"] if os.environ.get("BENCH_PROFILE") == "gil" else []),
        "--format",
        "raw",
        "-o",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield box
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if out.exists():
            box["file"] = str(out.relative_to(ROOT))
            box["threads"] = summarize_profile(out)


# --- a real cluster ------------------------------------------------------------
# Rate limits are a policy, not a capacity: the benchmark clusters lift them so a
# load of thousands of requests/s measures the servers (authentication, ACL
# checks and the limiter's bookkeeping still run on every request).
BENCH_ENV = {
    "HEROCTL_RATE_LIMIT_DEFAULT": "0",
    "HEROCTL_RATE_LIMIT_MANAGEMENT": "0",
    "HEROCTL_RATE_LIMIT_SERVICE": "0",
}


@contextlib.contextmanager
def running_cluster(size: int = 3, name: str = "bench", tls: bool = False) -> Iterator[Cluster]:
    """A started, ready cluster of real heroctld processes; always torn down.
    Plain HTTP unless ``tls`` (bench_tls compares the two)."""
    root = Path(tempfile.mkdtemp(prefix=f"heroctl-bench-{name}-"))
    cluster = Cluster(root, size, env=dict(BENCH_ENV), tls=tls)
    ok = False
    try:
        log(f"{name}: starting a {size}-server cluster in {root}")
        cluster.start()
        yield cluster
        ok = True
    finally:
        for s in cluster.servers:
            with contextlib.suppress(Exception):
                if s.alive:
                    s.resume()
                s.stop()
            with contextlib.suppress(Exception):
                s.kill()
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for s in cluster.servers:
                tail = s.log().splitlines()[-15:]
                log(f"{name}: {s.name} log tail:\n    " + "\n    ".join(tail))
            log(f"{name}: failed; logs kept in {root}")


def auth_headers(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"} if server.token else {}


def server_pids(cluster: Cluster) -> dict[str, int]:
    return {s.name: s.proc.pid for s in cluster.servers if s.alive and s.proc is not None}


def job_spec(name: str, version: int = 0) -> dict[str, Any]:
    """A small but realistic service job (~500 bytes of JSON)."""
    return {
        "name": name,
        "type": "service",
        "meta": {"owner": "bench", "revision": str(version)},
        "groups": [
            {
                "name": "web",
                "count": 2,
                "tasks": [
                    {
                        "name": "app",
                        "driver": "docker",
                        "image": "ghcr.io/example/web:1.4.2",
                        "ports": [{"name": "http", "to": 8080}],
                        "env": {"REVISION": str(version), "LOG_LEVEL": "info"},
                        "resources": {"cpu": 100, "memory": 128},
                        "check": {
                            "type": "http",
                            "port": "http",
                            "path": "/health",
                            "interval": "10s",
                            "timeout": "2s",
                        },
                    }
                ],
            }
        ],
    }


def job_body(name: str, version: int = 0) -> bytes:
    return json.dumps(job_spec(name, version), separators=(",", ":")).encode()


Item = tuple[str, bytes | None]  # (path, body)


def cycling_job_items(proc: int, names_per_proc: int, prefix: str = "w") -> list[Item]:
    """Job submits over a fixed set of names (every submit is a new version)."""
    return [("/v1/jobs", job_body(f"{prefix}{proc}-{k}", k)) for k in range(names_per_proc)]


def versioned_job_items(proc: int, jobs: int, procs: int, versions: int, prefix: str) -> list[Item]:
    """Generator ``proc``'s share (of ``procs``) of ``jobs`` jobs named
    ``<prefix><k>``, each submitted ``versions`` times (every job's first
    version before any second one)."""
    mine = [k for k in range(jobs) if k % procs == proc]
    return [("/v1/jobs", job_body(f"{prefix}{k}", v)) for v in range(versions) for k in mine]


def stale_job_count(server: Server, timeout: float = 30) -> int:
    """How many jobs a server holds (its own state, no barrier); -1 when it does not answer."""
    r = server.get("/v1/jobs?stale=true", timeout=timeout)
    return len(r.body) if r.status == 200 else -1


def job_get_items(proc: int, names: list[str], stale: bool) -> list[Item]:
    query = "?stale=true" if stale else ""
    return [(f"/v1/jobs/{n}{query}", None) for n in names]


# --- load generator -------------------------------------------------------------
@dataclass
class LoadSpec:
    """What every generator process does.

    `items(proc_index)` builds that process's request list (a module-level
    function or functools.partial of one, so it pickles). With `count_mode`
    every item is sent once (retried up to `retries` times on failure) and the
    run ends when all are done or after `duration`; otherwise items cycle until
    `duration` has passed, and only responses inside the window are counted.
    """

    urls: list[str]
    method: str
    items: Callable[[int], list[Item]]
    concurrency: int = 64
    procs: int = 2
    duration: float = 10.0
    count_mode: bool = False
    retries: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 15.0
    ca_file: str | None = None  # https URLs: the cluster CA they are verified with


@dataclass
class LoadResult:
    ok: int
    window_s: float
    latencies_ms: list[float]
    statuses: dict[str, int]
    errors: dict[str, int]
    gen_cpu_pct: list[float]
    cpu: dict[str, Any]
    failed_items: int = 0

    @property
    def rate(self) -> float:
        return self.ok / self.window_s if self.window_s > 0 else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def cpu_ms_per_request(self) -> dict[str, float]:
        """CPU milliseconds each process spent per acknowledged request.

        Far less sensitive to other load on the machine than rates are (it
        counts the work, not the waiting), so it is the number to compare
        between runs on a busy box. "generators" is all load processes together.
        """
        if not self.ok or not self.cpu:
            return {}
        wall = self.cpu["wall_s"]
        out = {
            name: round(pct / 100.0 * wall * 1000.0 / self.ok, 4)
            for name, pct in self.cpu["cpu_pct"].items()
        }
        out["generators"] = round(sum(self.gen_cpu_pct) / 100.0 * wall * 1000.0 / self.ok, 4)
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "cpu_ms_per_request": self.cpu_ms_per_request(),
            "ok": self.ok,
            "window_s": round(self.window_s, 3),
            "rate_per_s": round(self.rate, 1),
            "p50_ms": round(self.p(50), 3),
            "p99_ms": round(self.p(99), 3),
            "statuses": self.statuses,
            "errors": self.errors,
            "failed_items": self.failed_items,
            "generator_cpu_pct": self.gen_cpu_pct,
            "cpu": self.cpu,
        }


def _split(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


async def _generate_one(
    spec: LoadSpec, index: int, ready_q: Any, start_ev: Any, start_at: Any
) -> dict[str, Any]:
    items = spec.items(index)
    conc = max(1, _split(spec.concurrency, spec.procs, index))
    headers = dict(spec.headers)
    if spec.method in ("POST", "PUT"):
        headers.setdefault("Content-Type", "application/json")
    loop = asyncio.get_running_loop()
    urls = spec.urls
    targets = [split_url(u) for u in urls]
    # Every (server, item) request prebuilt: the generator only writes bytes.
    raw = [
        [build_request(spec.method, f"{h}:{p}", path, body, headers) for path, body in items]
        for h, p in targets
    ]
    tls = ssl.create_default_context(cafile=spec.ca_file) if urls[0].startswith("https") else None
    conns = [LeanConnection(*targets[(index + t) % len(targets)], tls) for t in range(conc)]
    live = build_request("GET", "x", "/v1/health/live", None, {})

    async def warm(t: int) -> None:  # opens one kept-alive connection per client
        with contextlib.suppress(Exception):
            await conns[t].request(live, spec.timeout)

    await asyncio.gather(*(warm(t) for t in range(conc)))
    ready_q.put((index, None))
    if not await loop.run_in_executor(None, start_ev.wait, 120):
        return {"fatal": "start signal never came"}
    start = start_at.value
    end = start + spec.duration
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    cpu0 = time.process_time()
    counter = itertools.count()
    lat = array("d")
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    state = {"ok": 0, "failed": 0, "last": start}
    n_items, count_mode = len(items), spec.count_mode

    async def client(t: int) -> None:
        mine = raw[(index + t) % len(targets)]
        request = conns[t].request
        timeout = spec.timeout
        while True:
            i = next(counter)
            if count_mode and i >= n_items:
                return
            data = mine[i % n_items]
            for _attempt in range(spec.retries + 1):
                t0 = time.monotonic()
                if t0 >= end:
                    return
                try:
                    status = await request(data, timeout)
                except Exception as e:  # noqa: BLE001 - counted, never fatal
                    errors[type(e).__name__] += 1
                    await asyncio.sleep(0.02)
                    continue
                t1 = time.monotonic()
                if t1 > end:
                    return
                statuses[str(status)] += 1
                if 200 <= status < 300:
                    state["ok"] += 1
                    state["last"] = max(state["last"], t1)
                    lat.append((t1 - t0) * 1000.0)
                    break
                if status >= 500 or status == 429:
                    await asyncio.sleep(0.02)
            else:
                state["failed"] += 1

    await asyncio.gather(*(client(t) for t in range(conc)))
    cpu = time.process_time() - cpu0
    for conn in conns:
        conn.close()
    finished = state["last"] if count_mode else end
    wall = max(min(time.monotonic(), end) - start, 1e-9)
    return {
        "ok": state["ok"],
        "failed": state["failed"],
        "finished": finished,
        "lat": lat,
        "statuses": dict(statuses),
        "errors": dict(errors),
        "cpu_pct": round(100.0 * cpu / wall, 1),
    }


def _generator_child(
    spec: LoadSpec, index: int, ready_q: Any, result_q: Any, start_ev: Any, start_at: Any
) -> None:
    try:
        result = asyncio.run(_generate_one(spec, index, ready_q, start_ev, start_at))
    except BaseException:  # noqa: BLE001 - reported to the parent
        result = {"fatal": traceback.format_exc()}
        ready_q.put((index, result["fatal"]))
    result_q.put((index, result))


def generate(spec: LoadSpec, watch_pids: dict[str, int] | None = None) -> LoadResult:
    """Run the load in `spec.procs` processes; sums their results."""
    ctx = mp.get_context("spawn")
    ready_q, result_q = ctx.Queue(), ctx.Queue()
    start_ev = ctx.Event()
    start_at = ctx.Value("d", 0.0)
    procs = [
        ctx.Process(
            target=_generator_child,
            args=(spec, i, ready_q, result_q, start_ev, start_at),
            name=f"bench-load-{i}",
            daemon=True,
        )
        for i in range(spec.procs)
    ]
    watch = CpuWatch(watch_pids or {})
    results: dict[int, dict[str, Any]] = {}
    try:
        for p in procs:
            p.start()
        ready = 0
        ready_deadline = time.monotonic() + 60
        while ready < len(procs):
            try:
                idx, err = ready_q.get(timeout=0.5)
            except queue.Empty:
                dead = [p.name for p in procs if p.exitcode is not None]
                if dead or time.monotonic() > ready_deadline:
                    raise RuntimeError(f"load generators not ready (exited: {dead})") from None
                continue
            if err:
                raise RuntimeError(f"load generator {idx} failed to start:\n{err}")
            ready += 1
        start = time.monotonic() + 0.2
        start_at.value = start
        start_ev.set()
        time.sleep(max(0.0, start - time.monotonic()))
        watch.begin()
        deadline = start + spec.duration + spec.timeout + 30
        if not spec.count_mode:
            time.sleep(max(0.0, start + spec.duration - time.monotonic()))
            watch.end()
        dead_since: float | None = None
        while len(results) < len(procs):
            try:
                idx, res = result_q.get(timeout=1.0)
            except queue.Empty:
                now = time.monotonic()
                missing = [p for i, p in enumerate(procs) if i not in results]
                if any(p.exitcode is not None for p in missing):
                    dead_since = dead_since or now
                if now > deadline or (dead_since and now - dead_since > 5):
                    raise RuntimeError(
                        f"load generators gave no result: {[p.name for p in missing]}"
                    ) from None
                continue
            if "fatal" in res:
                raise RuntimeError(f"load generator {idx} failed:\n{res['fatal']}")
            results[idx] = res
        if spec.count_mode:
            watch.end()
    finally:
        start_ev.set()
        for p in procs:
            if p.pid is None:  # never started
                continue
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    lat: list[float] = []
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for res in results.values():
        lat.extend(res["lat"])
        statuses.update(res["statuses"])
        errors.update(res["errors"])
    if spec.count_mode:
        window = max((r["finished"] for r in results.values()), default=start) - start
    else:
        window = spec.duration
    return LoadResult(
        ok=sum(r["ok"] for r in results.values()),
        window_s=window,
        latencies_ms=lat,
        statuses=dict(statuses),
        errors=dict(errors),
        gen_cpu_pct=[results[i]["cpu_pct"] for i in sorted(results)],
        cpu=watch.result,
        failed_items=sum(r["failed"] for r in results.values()),
    )


def sequential(
    url: str,
    method: str,
    items: Callable[[int], list[Item]],
    headers: dict[str, str],
    watch_pids: dict[str, int] | None = None,
    max_duration: float = 120.0,
    ca_file: str | None = None,
) -> LoadResult:
    """One client, one request at a time (latency), in a separate process."""
    return generate(
        LoadSpec(
            urls=[url],
            method=method,
            items=items,
            concurrency=1,
            procs=1,
            duration=max_duration,
            count_mode=True,
            headers=headers,
            ca_file=ca_file,
        ),
        watch_pids,
    )


def partial(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """functools.partial, named here so benchmark modules read plainly."""
    return functools.partial(fn, *args, **kwargs)
