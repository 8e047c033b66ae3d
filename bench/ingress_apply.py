"""The ingress supervisor's own cost of one configuration change with many
hosts, measured in this process on a private prefix with a real nginx
(``NginxSupervisor``, as every node's agent runs it):

* ``render``: the model to nginx.conf text (pure Python);
* ``nginx -t``: checking that text (a subprocess);
* ``apply``: the whole change as the agent does it: render, write the files
  (fsynced), ``nginx -t`` the candidate, swap it in, SIGHUP, wait for the
  master's "start worker processes" and for the old workers to let go of
  the listening sockets.

Two changes: adding ``hosts`` sites to an empty configuration, and moving
one upstream among them (what a new healthy allocation costs). Nodes do not
report their apply times (the node's ``ingress`` status has no timing), so
this is where they are measured.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.ingress import IngressConfig, Listeners, NginxSupervisor, Route, Site, render
from bench.common import load_average, median
from tests.support.cluster import free_port


def _config(listeners: Listeners, hosts: int, moved: int) -> IngressConfig:
    sites = tuple(
        Site(
            host=f"h{k}.apply.bench.test",
            routes=(Route("/", (f"127.0.0.1:{20000 + (moved if k == 0 else 0)}",)),),
            tls=False,
        )
        for k in range(hosts)
    )
    return IngressConfig(listeners, sites)


def _nginx_t(nginx: str, prefix: Path, conf: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(
        [nginx, "-t", "-q", "-p", f"{prefix}/", "-c", str(conf)], capture_output=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"nginx -t failed: {done.stderr.decode()[-300:]}")
    return (time.perf_counter() - t0) * 1000.0


async def _measure(prefix: Path, hosts: int, rounds: int) -> dict[str, Any]:
    supervisor = NginxSupervisor(prefix)
    listeners = Listeners(bind="127.0.0.1", http_port=free_port(), https_port=free_port())
    empty = IngressConfig(listeners, ())
    await supervisor.start(empty)
    times: dict[str, list[float]] = {"render": [], "nginx_t": [], "add": [], "move": []}
    try:
        nginx = supervisor.status()["nginx"].split(" at ", 1)[1]
        for i in range(rounds):
            full = _config(listeners, hosts, 0)
            t0 = time.perf_counter()
            render(full, supervisor.paths)
            times["render"].append((time.perf_counter() - t0) * 1000.0)
            t0 = time.perf_counter()
            result = await supervisor.apply(full)
            times["add"].append((time.perf_counter() - t0) * 1000.0)
            if not result.changed:
                raise RuntimeError(f"apply of {hosts} hosts: {result.error}")
            times["nginx_t"].append(
                await asyncio.to_thread(_nginx_t, nginx, prefix, supervisor.paths.live_conf)
            )
            moved = _config(listeners, hosts, i + 1)
            t0 = time.perf_counter()
            result = await supervisor.apply(moved)
            times["move"].append((time.perf_counter() - t0) * 1000.0)
            if not result.changed:
                raise RuntimeError(f"apply of a moved upstream: {result.error}")
            await supervisor.apply(empty)  # back to no site for the next round
    finally:
        await supervisor.close()
    out: dict[str, Any] = {f"{k}_ms": [round(v, 2) for v in vs] for k, vs in times.items()}
    out.update({f"{k}_p50_ms": round(median(vs), 2) for k, vs in times.items()})
    out["hosts"] = hosts
    return out


def supervisor_apply(hosts: int, rounds: int) -> dict[str, Any]:
    """Median times (ms) of render, ``nginx -t`` and whole applies with ``hosts`` sites."""
    load = load_average()
    with tempfile.TemporaryDirectory(prefix="heroctl-bench-apply-") as tmp:
        result = asyncio.run(_measure(Path(tmp) / "ingress", hosts, rounds))
    result["load_average"] = load
    return result
