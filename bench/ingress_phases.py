"""The ingress benchmark's timed route changes, each measured on every node:

* ``new_host``: a job submit with a new host, from the submit's 201 to each
  node's ingress answering that host (no longer our unknown-host 404: the
  site is configured; 503 until an allocation is healthy), then to each
  answering 200 from the allocation, then the job's delete to each answering
  404 again;
* ``scale_up``: a new allocation of a running service, from the API showing
  it healthy (takes traffic, `GET /v1/ingress/:host`) to each node routing a
  request to it (its page is its id);
* ``certificate``: a job with an ACME host, from the submit's 201 to a TLS
  handshake on each node's ingress verifying against pebble's root;
* ``many_hosts``: ``n`` hosts in jobs of 100 ingress entries, from the last
  submit to every node answering every host, and the memory of the agents
  and of nginx with them.

Every node is asked every 10 ms (50 ms for TLS handshakes), each request on
a new connection.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from bench.common import load_average, log, median, proc_status
from bench.ingress_cluster import (
    IngressCluster,
    delete_job,
    route_allocations,
    submit,
    wait_serving,
    web_job,
)
from bench.ingress_tools import (
    UNKNOWN_HOST,
    http_get,
    ingress_master,
    memory_kb,
    nginx_pids,
    poll_nodes,
    status_or_zero,
    tls_verified,
)
from tests.support.cluster import wait_until

DOMAIN = "bench.test"


class FirstTime:
    """A thread asking ``check`` every ``interval`` until it holds; ``at`` is
    then the monotonic time it first did (None until then)."""

    def __init__(self, check: Callable[[], bool], interval: float = 0.01) -> None:
        self.at: float | None = None
        self._stop = threading.Event()
        self._check, self._interval = check, interval
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-first-time")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._check():
                    self.at = time.monotonic()
                    return
            except OSError:
                pass
            self._stop.wait(self._interval)

    def result(self, timeout: float) -> float:
        self._thread.join(timeout)
        self._stop.set()
        if self.at is None:
            raise TimeoutError(f"not seen within {timeout:g}s")
        return self.at


def _slowest(times: dict[str, float]) -> float:
    return max(times.values())


def _rounded(times: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in times.items()}


def _answers(port: int, host: str) -> bool:
    return status_or_zero(port, host) not in (0, UNKNOWN_HOST)


def new_host(ic: IngressCluster, rounds: int) -> dict[str, Any]:
    ports = ic.http_ports()
    rows = []
    for i in range(rounds):
        host, job = f"new{i}.{DOMAIN}", f"new-{i}"
        load = load_average()
        t0 = submit(ic.api, web_job(job, [host], 1))
        answered = poll_nodes(ports, lambda p, h=host: _answers(p, h), t0, 15)
        ok = poll_nodes(ports, lambda p, h=host: status_or_zero(p, h) == 200, t0, 60)
        t1 = delete_job(ic.api, job)
        gone = poll_nodes(ports, lambda p, h=host: status_or_zero(p, h) == UNKNOWN_HOST, t1, 15)
        row = {
            "answered_s": _rounded(answered),
            "answered_200_s": _rounded(ok),
            "delete_to_404_s": _rounded(gone),
            "load_average": load,
        }
        rows.append(row)
        log(
            f"new host {i + 1}/{rounds}: every node answers in {_slowest(answered):.3f} s, "
            f"200 in {_slowest(ok):.2f} s, 404 after delete in {_slowest(gone):.3f} s"
        )
    slowest = [_slowest(r["answered_s"]) for r in rows]
    return {
        "p50_s": median(slowest),
        "max_s": max(slowest),
        "delete_p50_s": median([_slowest(r["delete_to_404_s"]) for r in rows]),
        "to_200_p50_s": median([_slowest(r["answered_200_s"]) for r in rows]),
        "rounds": rows,
    }


def _new_id_served(port: int, host: str, old: set[str], tries: int = 4) -> bool:
    """Whether one of ``tries`` requests is answered by an allocation not in ``old``
    (the upstreams are balanced round-robin per nginx worker)."""
    for _ in range(tries):
        try:
            status, body = http_get(port, host)
        except (OSError, http.client.HTTPException):
            continue
        if status == 200 and body.decode(errors="replace").strip() not in old:
            return True
    return False


def scale_up(ic: IngressCluster, rounds: int) -> dict[str, Any]:
    host, job = f"scale.{DOMAIN}", "scale"
    ports = ic.http_ports()
    submit(ic.api, web_job(job, [host], 1))
    wait_serving(ic.api, host, 1)
    poll_nodes(ports, lambda p: status_or_zero(p, host) == 200, time.monotonic(), 30)
    rows = []
    for i in range(rounds):
        count = i + 2
        old = {a["id"] for a in route_allocations(ic.api, host)}
        load = load_average()

        def healthy_new(old: set[str] = old) -> bool:
            return any(a["healthy"] and a["id"] not in old for a in route_allocations(ic.api, host))

        t0 = submit(ic.api, web_job(job, [host], count))
        seen = FirstTime(healthy_new)
        routed = poll_nodes(ports, lambda p, o=old: _new_id_served(p, host, o), t0, 60)
        healthy_at = seen.result(10) - t0
        after = {n: round(t - healthy_at, 3) for n, t in routed.items()}
        rows.append(
            {
                "count": count,
                "submit_to_healthy_s": round(healthy_at, 3),
                "healthy_to_routed_s": after,
                "load_average": load,
            }
        )
        log(
            f"scale up {i + 1}/{rounds} (to {count}): healthy {healthy_at:.2f} s after the "
            f"submit, every node routes to it {_slowest(after):.3f} s later"
        )
        wait_serving(ic.api, host, count)
    slowest = [_slowest(r["healthy_to_routed_s"]) for r in rows]
    return {"p50_s": median(slowest), "max_s": max(slowest), "rounds": rows}


def certificate(ic: IngressCluster, rounds: int, timeout: float) -> dict[str, Any]:
    ports = ic.https_ports()
    context = ssl.create_default_context(cadata=ic.pebble.issuing_roots_pem())
    rows = []
    for i in range(rounds):
        host, job = f"secure{i}.{DOMAIN}", f"secure-{i}"
        load = load_average()

        def valid(h: str = host) -> bool:
            r = ic.api.get(f"/v1/ingress/{h}", timeout=5)
            return r.status == 200 and r.body["cert"]["status"] == "valid"

        t0 = submit(ic.api, web_job(job, [host], 1, tls="acme"))
        in_state = FirstTime(valid, 0.02)
        try:
            served = poll_nodes(
                ports, lambda p, h=host: tls_verified(p, h, context), t0, timeout, 0.05
            )
        except TimeoutError as e:
            raise TimeoutError(f"{host}: {e}; {_why_not(ic, host)}") from None
        valid_at = in_state.result(10) - t0
        delete_job(ic.api, job)
        rows.append(
            {
                "valid_in_state_s": round(valid_at, 3),
                "verified_handshake_s": _rounded(served),
                "load_average": load,
            }
        )
        log(
            f"certificate {i + 1}/{rounds}: valid in the state {valid_at:.2f} s after the "
            f"submit, every node's handshake verifies at {_slowest(served):.2f} s"
        )
    slowest = [_slowest(r["verified_handshake_s"]) for r in rows]
    return {"p50_s": median(slowest), "max_s": max(slowest), "rounds": rows}


def _why_not(ic: IngressCluster, host: str) -> str:
    """The certificate's state and each node's ingress error, for a failure message."""
    cert = ic.api.get(f"/v1/ingress/{host}", timeout=5).body.get("cert")
    errors = {}
    for s in ic.cluster.servers:
        node = ic.api.get(f"/v1/nodes/{s.node_id}", timeout=5).body
        errors[s.name] = (node.get("ingress") or {}).get("error")
    return f"certificate {cert}; nodes' ingress errors {errors}"


def memory(ic: IngressCluster) -> dict[str, Any]:
    """VmRSS of each heroctld (its embedded agent included) and of each node's
    nginx (master + workers: RSS summed, and PSS, which counts shared pages once)."""
    servers = {}
    nginx = {}
    for s in ic.cluster.servers:
        assert s.proc is not None
        servers[s.name] = round(proc_status(s.proc.pid)["VmRSS"] / 1024.0, 1)
        mem = memory_kb(nginx_pids(ingress_master(s.data_dir)))
        nginx[s.name] = {
            "rss_mb": round(mem["rss_kb"] / 1024.0, 1),
            "pss_mb": round(mem["pss_kb"] / 1024.0, 1),
            "processes": mem["processes"],
        }
    return {"heroctld_rss_mb": servers, "nginx": nginx}


def _sweep(port: int, hosts: list[str], want: Callable[[int], bool]) -> list[str]:
    """The hosts a node does not serve as wanted."""
    return [h for h in hosts if not want(status_or_zero(port, h))]


def many_hosts(ic: IngressCluster, count: int) -> dict[str, Any]:
    ports = ic.http_ports()
    jobs = {
        f"many-{j}": [f"h{j}-{k}.many.{DOMAIN}" for k in range(min(100, count - 100 * j))]
        for j in range((count + 99) // 100)
    }
    hosts = [h for names in jobs.values() for h in names]
    sentinels = [names[-1] for names in jobs.values()]
    load = load_average()
    t_last = 0.0
    for job, names in jobs.items():
        t_last = submit(ic.api, web_job(job, names, 1))

    def configured(port: int) -> bool:
        return _answers(port, sentinels[-1])

    answered = poll_nodes(ports, configured, t_last, 60)
    for name, port in ports.items():  # one model holds them all: check, do not wait
        missing = _sweep(port, hosts, lambda s: s not in (0, UNKNOWN_HOST))
        if missing:
            raise RuntimeError(f"{name} answers {sentinels[-1]} but not {missing[:5]}...")

    def all_ok(port: int) -> bool:
        return all(status_or_zero(port, h) == 200 for h in sentinels)

    ok = poll_nodes(ports, all_ok, t_last, 120, 0.05)
    for name, port in ports.items():
        wait_until(
            lambda p=port: not _sweep(p, hosts, lambda s: s == 200),
            30,
            0.2,
            f"{name} answering 200 for all {count} hosts",
        )
    conf = ic.cluster.servers[0].data_dir / "agent" / "ingress" / "conf" / "nginx.conf"
    log(
        f"{count} hosts: every node answers all of them {_slowest(answered):.3f} s after the "
        f"last submit, 200 from their allocations at {_slowest(ok):.2f} s"
    )
    return {
        "hosts": len(hosts),
        "jobs": len(jobs),
        "answered_s": _rounded(answered),
        "answered_200_s": _rounded(ok),
        "slowest_s": _slowest(answered),
        "nginx_conf_kb": round(conf.stat().st_size / 1024.0, 1),
        "load_average": load,
    }
