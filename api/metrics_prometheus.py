"""The metrics snapshot (:mod:`api.routes_metrics`) in the Prometheus text
format, for teams that already scrape: one collector built per scrape.

The ingress figures are exported per host *and node* (the snapshot's
``ingress[host]["nodes"]``), not summed: the counters are each node's
access-log reader's, which start over when that node's agent restarts, and a
sum would drop whenever one node is restarted or missed a scrape, which
``rate()`` takes for a reset (a spike). Per node, a reset is a reset; add
up with ``sum by (host) (rate(heroctl_ingress_requests_total[5m]))``. The
upstream latency quantiles are each node's over its reader's window (a
minute): ``max by (host)`` is an upper bound of the cluster's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


class _SnapshotCollector:
    """prometheus-client collector over one snapshot (built per scrape)."""

    def __init__(self, snap: dict[str, Any]) -> None:
        self.snap = snap

    def collect(self):  # type: ignore[no-untyped-def]
        snap = self.snap
        g = GaugeMetricFamily
        node_cpu = g(
            "heroctl_node_cpu_used_percent", "Busy CPU of the node, % of all cores", labels=["node"]
        )
        node_cpu_total = g(
            "heroctl_node_cpu_total_mhz", "CPU the node offers (MHz)", labels=["node"]
        )
        mem_used = g("heroctl_node_memory_used_bytes", "Memory used on the node", labels=["node"])
        mem_total = g("heroctl_node_memory_total_bytes", "Memory the node offers", labels=["node"])
        disk_used = g(
            "heroctl_node_disk_used_bytes", "Disk used (data dir filesystem)", labels=["node"]
        )
        disk_total = g(
            "heroctl_node_disk_total_bytes", "Disk size (data dir filesystem)", labels=["node"]
        )
        node_allocs = g(
            "heroctl_node_allocations", "Pending and running allocations", labels=["node"]
        )
        node_up = g("heroctl_node_ready", "1 when the node is ready", labels=["node"])
        for n in snap["nodes"]:
            name = n["name"] or n["id"]
            node_up.add_metric([name], 1.0 if n["status"] == "ready" else 0.0)
            node_allocs.add_metric([name], n["allocations"])
            node_cpu_total.add_metric([name], n["cpu"]["total_mhz"] or 0)
            mem_total.add_metric([name], (n["memory"]["total_mb"] or 0) * 2**20)
            if n["cpu"]["used_percent"] is not None:
                node_cpu.add_metric([name], n["cpu"]["used_percent"])
            if n["memory"]["used_mb"] is not None:
                mem_used.add_metric([name], n["memory"]["used_mb"] * 2**20)
            if n["disk"]["used_mb"] is not None:
                disk_used.add_metric([name], n["disk"]["used_mb"] * 2**20)
            if n["disk"]["total_mb"]:
                disk_total.add_metric([name], n["disk"]["total_mb"] * 2**20)
        yield from (
            node_up,
            node_cpu,
            node_cpu_total,
            mem_used,
            mem_total,
            disk_used,
            disk_total,
            node_allocs,
        )
        allocs = g("heroctl_allocations", "Allocations by status", labels=["status"])
        for status, count in snap["allocations"].items():
            allocs.add_metric([status], count)
        yield allocs
        job_cpu = g(
            "heroctl_job_cpu_percent",
            "CPU of a job's running allocations, % of a core",
            labels=["job"],
        )
        job_mem = g(
            "heroctl_job_memory_bytes", "Memory of a job's running allocations", labels=["job"]
        )
        job_running = g(
            "heroctl_job_running_allocations", "Running allocations of a job", labels=["job"]
        )
        for j in snap["jobs"]:
            job_cpu.add_metric([j["name"]], j["cpu_percent"])
            job_mem.add_metric([j["name"]], j["memory_mb"] * 2**20)
            job_running.add_metric([j["name"]], j["running"])
        yield from (job_cpu, job_mem, job_running)
        raft = snap["raft"]
        yield g("heroctl_raft_index", "Raft index of the answering server", value=raft["index"])
        yield g("heroctl_raft_term", "Raft term", value=raft["term"] or 0)
        leader = g("heroctl_raft_leader", "1 for the current leader", labels=["server"])
        if raft["leader"]:
            leader.add_metric([raft["leader"]], 1)
        yield leader
        rps = g("heroctl_api_requests_per_second", "API requests/s (last 10 s)", labels=["server"])
        for server, value in snap["api"]["servers"].items():
            if value is not None:
                rps.add_metric([server], value)
        yield rps
        yield from _ingress_families(snap.get("ingress") or {})


def _ingress_families(ingress: dict[str, Any]) -> Iterator[Metric]:
    """Per host and node: requests, responses by class and bytes (counters),
    the upstream latency quantiles (gauges, seconds)."""
    labels = ["host", "node"]
    c = CounterMetricFamily
    requests = c(
        "heroctl_ingress_requests", "Requests the node's ingress served for the host", labels=labels
    )
    responses = c(
        "heroctl_ingress_responses",
        "Responses of the node's ingress for the host, by status class",
        labels=[*labels, "class"],
    )
    sent = c("heroctl_ingress_sent_bytes", "Bytes sent to the host's clients", labels=labels)
    received = c(
        "heroctl_ingress_received_bytes", "Bytes received from the host's clients", labels=labels
    )
    latency = GaugeMetricFamily(
        "heroctl_ingress_upstream_latency_seconds",
        "Upstream response time of the host's recent requests on the node, by quantile",
        labels=[*labels, "quantile"],
    )
    for host, row in sorted(ingress.items()):
        for node, figures in sorted((row.get("nodes") or {}).items()):
            requests.add_metric([host, node], figures["requests"])
            for cls, count in figures["responses"].items():
                responses.add_metric([host, node, cls], count)
            sent.add_metric([host, node], figures["bytes_sent"])
            received.add_metric([host, node], figures["bytes_received"])
            for quantile, key in (("0.5", "upstream_p50_ms"), ("0.99", "upstream_p99_ms")):
                if figures.get(key) is not None:
                    latency.add_metric([host, node, quantile], figures[key] / 1000.0)
    yield from (requests, responses, sent, received, latency)


def prometheus_text(snap: dict[str, Any]) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap))
    return generate_latest(registry), CONTENT_TYPE_LATEST
