"""The web panel in a real browser: first page load, time to interactive, and
an overview of 200 jobs and 2,000 allocations staying responsive while events
stream in.

Targets (issue 15): the first page ready within 1 s on loopback; no long task
over 200 ms on the overview (PerformanceObserver 'longtask') while jobs keep
being written.

How it is measured. One heroctld over HTTPS on 127.0.0.1 (rate limits lifted
as in every benchmark) and 10 nodes registered by the benchmark that act on
their allocations like an agent would (tests/support/acting_node.py: running
and healthy at once, no containers). 200 jobs of 10 allocations each are
submitted and placed. Debian's chromium, driven by Playwright (headless, a
fresh profile per load, never a browser Playwright downloads):

- *sign-in page*: a cold load of /ui/ (no cookie): navigation timing's
  responseEnd, DOMContentLoaded and load, and when the sign-in button is
  there (time to interactive), median of 5 fresh contexts;
- *overview ready*: signed in (the session cookie), a cold load of /ui/ until
  the overview shows the counts of the 200 jobs and 2,000 allocations (median
  of 5);
- *responsive*: the overview open for 30 s while a writer submits new versions
  of the jobs back to back (each replaces 10 allocations: alloc and job
  events stream in); every long task the page had is counted, the longest is
  the metric; events that reached the server are counted too.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import BENCH_ENV, load_average, log, metric
from tests.support.acting_node import ActingNode
from tests.support.cluster import Cluster, Server, wait_until
from tests.ui.conftest import BUILD, CHROMIUM, CHROMIUM_ARGS, missing

PASSWORD = "bench-panel-password-1"
NODES = 10
JOBS = 200
COUNT = 10  # allocations per job
LOADS = 5
RESPONSIVE_S = 30.0
LONGTASK_INIT = """
window.__longtasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longtasks.push(e.duration);
}).observe({ type: "longtask", buffered: true });
"""


def _job(name: str, revision: int) -> dict[str, Any]:
    task = {
        "name": "app",
        "image": "busybox:1.36",
        "env": {"REVISION": str(revision)},
        "resources": {"cpu": 10, "memory": 16},
    }
    return {"name": name, "groups": [{"name": "web", "count": COUNT, "tasks": [task]}]}


def _populate(server: Server) -> float:
    started = time.monotonic()
    for i in range(JOBS):
        r = server.post("/v1/jobs", _job(f"panel-{i:03d}", 0))
        assert r.status in (200, 201), r.body

    def placed() -> bool:
        allocs = server.get("/v1/allocations?status=running").body
        return len(allocs) >= JOBS * COUNT

    wait_until(placed, timeout=600, interval=1.0, message=f"{JOBS * COUNT} allocations running")
    return time.monotonic() - started


def _sign_in_cookie(ctx: Any) -> None:
    r = ctx.request.post(
        "/v1/auth/login", data={"username": "admin", "password": PASSWORD, "cookie": True}
    )
    assert r.ok, r.text()


def _navigation(page: Any) -> dict[str, float]:
    return page.evaluate(
        """() => {
          const n = performance.getEntriesByType("navigation")[0];
          const api = performance.getEntriesByType("resource").filter(
            (e) => new URL(e.name).pathname.startsWith("/v1/"));
          const kb = (key) => api.reduce((s, e) => s + e[key], 0) / 1024;
          return { response_end: n.responseEnd, dom_content_loaded: n.domContentLoadedEventEnd,
                   load: n.loadEventEnd, transfer_kb: n.transferSize / 1024,
                   api_transfer_kb: kb("transferSize"), api_decoded_kb: kb("decodedBodySize") };
        }"""
    )


def _cold_loads(browser: Any, url: str, signed_in: bool) -> list[dict[str, float]]:
    out = []
    for _ in range(LOADS):
        ctx = browser.new_context(ignore_https_errors=True, base_url=url)
        try:
            if signed_in:
                _sign_in_cookie(ctx)
            page = ctx.new_page()
            page.goto("/ui/")
            if signed_in:
                page.wait_for_function(
                    """([jobs, allocs]) => {
                      const n = (label) => [...document.querySelectorAll(`[aria-label="${label}"] b`)]
                        .reduce((s, b) => s + Number(b.textContent), 0);
                      return n("Jobs by status") >= jobs && n("Allocations by status") >= allocs;
                    }""",
                    arg=[JOBS, JOBS * COUNT],
                    timeout=60_000,
                )
            else:
                page.get_by_role("button", name="Sign in").wait_for()
            ready = page.evaluate("() => performance.now()")
            page.wait_for_load_state("load")
            out.append(dict(_navigation(page), interactive=ready))
        finally:
            ctx.close()
    return out


def _writer(server: Server, stop: threading.Event, counts: dict[str, int]) -> None:
    revision = 1
    while not stop.is_set():
        for i in range(JOBS):
            if stop.is_set():
                return
            r = server.post("/v1/jobs", _job(f"panel-{i:03d}", revision))
            counts["writes" if r.status in (200, 201) else "refused"] += 1
        revision += 1


def _responsive(browser: Any, server: Server) -> dict[str, Any]:
    ctx = browser.new_context(ignore_https_errors=True, base_url=server.url)
    try:
        _sign_in_cookie(ctx)
        ctx.add_init_script(LONGTASK_INIT)
        page = ctx.new_page()
        page.goto("/ui/")
        page.get_by_role("list", name="Recent events").wait_for()
        page.wait_for_timeout(2000)  # the first reads in
        page.evaluate("() => { window.__longtasks = []; performance.clearResourceTimings(); }")
        first = server.get("/v1/cluster/status").body["commit_index"]
        stop = threading.Event()
        counts = {"writes": 0, "refused": 0}
        t = threading.Thread(target=_writer, args=(server, stop, counts), daemon=True)
        load_before = load_average()
        t.start()
        # the page keeps running; the driver only samples it now and then
        deadline = time.monotonic() + RESPONSIVE_S
        probes = []
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            page.evaluate("() => 1")  # a round trip into the page's main thread
            probes.append((time.monotonic() - t0) * 1000)
            time.sleep(0.5)
        stop.set()
        t.join(30)
        last = server.get("/v1/cluster/status").body["commit_index"]
        tasks = page.evaluate("() => window.__longtasks.slice()")
        reads = page.evaluate(
            """() => performance.getEntriesByType("resource")
                 .filter((e) => e.name.includes("/v1/allocations") || e.name.includes("/v1/jobs"))
                 .map((e) => ({ path: new URL(e.name).pathname, ms: e.duration, kb: e.encodedBodySize / 1024 }))"""
        )
        # the observer works: a 120 ms busy loop is seen as a long task
        page.evaluate(
            "() => setTimeout(() => { const t = performance.now(); while (performance.now() - t < 120); })"
        )
        page.wait_for_function("(n) => window.__longtasks.length > n", arg=len(tasks))
        shown = page.get_by_role("list", name="Recent events").inner_text()
        return {
            "longtasks": tasks,
            "reads": reads,
            "writes": counts["writes"],
            "refused": counts["refused"],
            "event_index_delta": int(last) - int(first),
            "probe_max_ms": max(probes),
            "probe_p50_ms": statistics.median(probes),
            "events_shown": bool(shown.strip()),
            "load_before": load_before,
            "load_after": load_average(),
        }
    finally:
        ctx.close()


def run(quick: bool = False) -> dict[str, Any]:
    why = missing()
    if why:
        raise RuntimeError(f"cannot run the panel benchmark: {why}")
    from playwright.sync_api import sync_playwright

    global JOBS, RESPONSIVE_S
    if quick:
        JOBS, RESPONSIVE_S = 40, 10.0
    root = Path(tempfile.mkdtemp(prefix="heroctl-bench-panel-"))
    cluster = Cluster(root, 1, env={**BENCH_ENV, "HEROCTL_ADMIN_PASSWORD": PASSWORD})
    nodes: list[ActingNode] = []
    try:
        log(f"panel: starting a server in {root} (ui build {BUILD.parent})")
        cluster.start()
        server = cluster.servers[0]
        nodes = [
            ActingNode(server, f"bench-node-{i}", cpu=4000, memory=8192).start()
            for i in range(NODES)
        ]
        setup_s = _populate(server)
        log(f"panel: {JOBS} jobs, {JOBS * COUNT} allocations running in {setup_s:.1f}s")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                signin = _cold_loads(browser, server.url, signed_in=False)
                overview = _cold_loads(browser, server.url, signed_in=True)
                log("panel: loads measured; the overview under writes")
                live = _responsive(browser, server)
            finally:
                browser.close()
    finally:
        for n in nodes:
            with contextlib.suppress(Exception):
                n.stop()
        cluster.stop()
    shutil.rmtree(root, ignore_errors=True)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    tasks = live["longtasks"]
    return {
        "signin_load_ms": metric(med(signin, "load"), "ms"),
        "signin_interactive_ms": metric(med(signin, "interactive"), "ms", "<= 1000"),
        "signin_transfer_kb": metric(med(signin, "transfer_kb"), "kB"),
        "overview_interactive_ms": metric(
            med(overview, "interactive"),
            "ms",
            "<= 1000",
            note=f"{JOBS} jobs, {JOBS * COUNT} allocations",
        ),
        "overview_api_transfer_kb": metric(
            med(overview, "api_transfer_kb"),
            "kB",
            note=f"the API answers it read, {med(overview, 'api_decoded_kb'):.0f} kB decoded",
        ),
        "responsive_max_longtask_ms": metric(max(tasks) if tasks else 0.0, "ms", "<= 200"),
        "responsive_longtasks": metric(len(tasks), ""),
        "responsive_job_writes": metric(live["writes"], ""),
        "responsive_raft_entries": metric(live["event_index_delta"], ""),
        "responsive_probe_max_ms": metric(live["probe_max_ms"], "ms"),
        "responsive_list_reads": metric(
            len(live["reads"]), "", note="GET /v1/jobs and /v1/allocations the page made"
        ),
        "_signin": signin,
        "_overview": overview,
        "_live": live,
        "_setup_s": setup_s,
    }
