"""Ingress metrics on the server side: the nodes' figures added up per host
(counters summed, latencies their maximum), the Prometheus text per host and
node, and end to end against a real two-server cluster whose agents each run
their nginx on 127.0.0.1: requests sent to both nodes' ingress show up in
the snapshot's ``ingress`` (each node's and their sum), in the Prometheus
text and in the history of ``/v1/metrics/query?host=`` (the other server's
history relayed from its agent), and the contract's 400s.

The requests go to a host no site serves: nginx answers 404 and counts them
under ``_`` (its name for every other host), which needs no job running."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from api.metrics_ingress import aggregate_ingress, total_series
from api.metrics_prometheus import prometheus_text
from cli.main import cli
from domain.metric_series import INGRESS_FIELDS, metric_problem
from tests.api.authutil import assert_error
from tests.support.cluster import Cluster, Server, free_port, wait_until


def figures(
    requests: int, rps: float | None, p50: float | None, p99: float | None, five: int = 0
) -> dict[str, Any]:
    """One node's line for one host, as /v1/agent/metrics/current answers it."""
    return {
        "requests": requests,
        "requests_per_second": rps,
        "responses": {"1xx": 0, "2xx": requests - five, "3xx": 0, "4xx": 0, "5xx": five},
        "bytes_sent": requests * 1000,
        "bytes_received": requests * 100,
        "upstream_p50_ms": p50,
        "upstream_p99_ms": p99,
    }


PER_NODE: dict[str, Any] = {
    "server-1": {
        "shop.test": figures(100, 2.0, 4.0, 40.0, five=3),
        "_": figures(5, 0.1, None, None),
    },
    "worker-1": {"shop.test": figures(50, 1.5, 6.0, 25.0)},
    "server-2": None,  # did not answer
    "worker-2": {},  # runs no ingress
    "worker-3": {"shop.test": "not figures", "odd.test": {"requests": "many", "responses": 3}},
}


def test_the_nodes_figures_add_up_per_host() -> None:
    ingress = aggregate_ingress(PER_NODE)
    assert set(ingress) == {"shop.test", "_", "odd.test"}
    shop = ingress["shop.test"]
    assert shop["requests"] == 150 and shop["requests_per_second"] == 3.5
    assert shop["responses"] == {"1xx": 0, "2xx": 147, "3xx": 0, "4xx": 0, "5xx": 3}
    assert shop["bytes_sent"] == 150_000 and shop["bytes_received"] == 15_000
    # percentiles do not add: the largest node's, an upper bound of the cluster's
    assert shop["upstream_p50_ms"] == 6.0 and shop["upstream_p99_ms"] == 40.0
    assert set(shop["nodes"]) == {"server-1", "worker-1"}
    assert shop["nodes"]["worker-1"] == figures(50, 1.5, 6.0, 25.0)
    assert ingress["_"]["upstream_p99_ms"] is None  # no upstream anywhere: no figure
    odd = ingress["odd.test"]  # what is not a number counts as nothing
    assert odd["requests"] == 0 and odd["responses"]["2xx"] == 0
    assert aggregate_ingress({}) == {}


def test_a_total_sums_rates_and_keeps_the_highest_latency() -> None:
    series = [
        {"points": [[0.0, 1.0], [60.0, 2.0]]},
        {"points": [[0.0, 3.0], [120.0, 5.0]]},
    ]
    assert total_series("requests", series, 60.0) == [[0.0, 4.0], [60.0, 2.0], [120.0, 5.0]]
    assert total_series("upstream_p99_ms", series, 60.0) == [[0.0, 3.0], [60.0, 2.0], [120.0, 5.0]]


def test_which_metric_goes_with_host() -> None:
    assert metric_problem("requests", "shop.test") is None
    assert metric_problem("cpu", None) is None
    assert "needs host" in (metric_problem("requests", None) or "")
    assert "needs host" in (metric_problem("upstream_p99_ms", "") or "")
    assert "ingress metrics only" in (metric_problem("memory", "shop.test") or "")
    assert "must be one of" in (metric_problem("heat", "shop.test") or "")
    assert "host name" in (metric_problem("requests", "a b") or "")
    assert all(f in (metric_problem("heat", None) or "") for f in INGRESS_FIELDS)


def test_the_prometheus_text_has_the_ingress_per_host_and_node() -> None:
    snap = {
        "nodes": [],
        "allocations": {},
        "jobs": [],
        "raft": {"index": 7, "term": 2, "leader": "server-1"},
        "api": {"servers": {}},
        "ingress": aggregate_ingress(PER_NODE),
    }
    body, content_type = prometheus_text(snap)
    assert content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    requests = families["heroctl_ingress_requests"]
    assert requests.type == "counter"
    got = {(s.labels["host"], s.labels["node"]): s.value for s in requests.samples}
    assert got[("shop.test", "server-1")] == 100 and got[("shop.test", "worker-1")] == 50
    assert {s.name for s in requests.samples} == {"heroctl_ingress_requests_total"}
    responses = {
        (s.labels["node"], s.labels["class"]): s.value
        for s in families["heroctl_ingress_responses"].samples
        if s.labels["host"] == "shop.test"
    }
    assert responses[("server-1", "5xx")] == 3 and responses[("worker-1", "2xx")] == 50
    sent = families["heroctl_ingress_sent_bytes"]
    assert sent.type == "counter" and sent.samples[0].name == "heroctl_ingress_sent_bytes_total"
    assert "heroctl_ingress_received_bytes" in families
    latency = families["heroctl_ingress_upstream_latency_seconds"]
    assert latency.type == "gauge"
    quantiles = {
        (s.labels["host"], s.labels["node"], s.labels["quantile"]): s.value for s in latency.samples
    }
    assert quantiles[("shop.test", "server-1", "0.99")] == pytest.approx(0.040)
    assert quantiles[("shop.test", "worker-1", "0.5")] == pytest.approx(0.006)
    assert not any(host == "_" for host, _, _ in quantiles)  # no figure, no sample


# --- a real cluster ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(
        tmp_path_factory.mktemp("metrics-ingress"),
        2,
        agent=True,
        env={"HEROCTL_METRICS_INTERVAL": "1", "HEROCTL_INGRESS_BIND": "127.0.0.1"},
    )
    for s in c.servers:  # each node's nginx on ports of its own
        s.env["HEROCTL_INGRESS_HTTP_PORT"] = str(free_port())
        s.env["HEROCTL_INGRESS_HTTPS_PORT"] = str(free_port())
    c.start()
    try:
        wait_until(
            lambda: (
                len([n for n in c.servers[0].get("/v1/nodes").body if n["status"] == "ready"]) == 2
            ),
            60,
            message="two ready nodes",
        )
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def server(cluster: Cluster) -> Server:
    return cluster.servers[0]


def send(server: Server, count: int) -> None:
    """``count`` requests to ``server``'s node's ingress for a host it does not serve."""
    port = int(server.env["HEROCTL_INGRESS_HTTP_PORT"])

    def one() -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/anything", headers={"Host": "nobody.test"})
            return conn.getresponse().status
        finally:
            conn.close()

    assert wait_until(one, 60, 0.2, message=f"{server.name}'s ingress answering") == 404
    for _ in range(count - 1):
        assert one() == 404


def test_requests_to_both_nodes_add_up_in_the_snapshot_and_the_history(
    cluster: Cluster, server: Server
) -> None:
    first, second = cluster.servers
    send(first, 5)
    send(second, 3)

    def counted() -> dict[str, Any] | None:
        snap = server.get("/v1/metrics").body
        other = snap["ingress"].get("_")
        return snap if other and other["requests"] == 8 else None

    snap = wait_until(counted, 60, 0.5, message="the 8 requests in /v1/metrics")
    other = snap["ingress"]["_"]
    assert {n: f["requests"] for n, f in other["nodes"].items()} == {"server-1": 5, "server-2": 3}
    assert other["responses"]["4xx"] == 8 and other["responses"]["2xx"] == 0
    assert other["bytes_sent"] > 0 and other["bytes_received"] > 0
    assert other["upstream_p99_ms"] is None  # nginx answered itself: no upstream

    prom = server.get("/v1/metrics?format=prometheus")
    families = {f.name: f for f in text_string_to_metric_families(prom.raw.decode())}
    got = {
        s.labels["node"]: s.value
        for s in families["heroctl_ingress_requests"].samples
        if s.labels["host"] == "_"
    }
    assert got == {"server-1": 5.0, "server-2": 3.0}

    def history() -> dict[str, Any] | None:
        r = server.get("/v1/metrics/query?metric=requests&host=_&from=-10m&step=1m")
        assert r.status == 200, r.body
        body = r.body
        busy = {s["node"] for s in body["series"] if any(v > 0 for _, v in s["points"])}
        return body if busy == {"server-1", "server-2"} else None

    body = wait_until(history, 30, 0.5, message="both nodes' request rates in the history")
    assert (body["metric"], body["unit"], body["scope"], body["host"]) == (
        "requests",
        "requests/s",
        "host",
        "_",
    )
    assert body["errors"] == [] and body["step"] == 60
    assert all(s["host"] == "_" for s in body["series"])
    # requests/s averaged per minute: summed over the nodes in the total
    assert sum(v for _, v in body["total"]["points"]) > 0
    # `heroctl metrics` shows the ingress per host.
    args = ["--address", server.url, "--token", server.token or "", "metrics"]
    out = CliRunner(env={"HEROCTL_ADDR": None, "HEROCTL_TOKEN": None}).invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert "Ingress" in out.stdout and "P99 MS" in out.stdout


def test_a_hosts_history_is_asked_of_every_node(server: Server) -> None:
    r = server.get("/v1/metrics/query?metric=requests&host=Shop.Test&from=-1h&step=1m")
    assert r.status == 200, r.body
    body = r.body
    assert (body["metric"], body["unit"], body["scope"]) == ("requests", "requests/s", "host")
    assert body["host"] == "shop.test"  # host names compare lowercase
    assert body["step"] >= 60 and body["series"] == []  # no node served it
    assert body["errors"] == []  # the other server's agent took ?host= too
    assert body["total"] == {"points": []}
    r = server.get("/v1/metrics/query?metric=upstream_p99_ms&host=shop.test&node=server-2")
    assert r.status == 200 and r.body["errors"] == [] and "total" not in r.body
    assert server.get("/v1/metrics/query?metric=cpu&from=-5m").status == 200  # as before


def test_host_goes_with_the_ingress_metrics_only(server: Server) -> None:
    for query, words in (
        ("metric=requests", "needs host"),
        ("metric=requests&host=", "needs host"),
        ("metric=cpu&host=shop.test", "ingress metrics only"),
        ("metric=heat&host=shop.test", "must be one of"),
        ("metric=heat", "requests"),  # the list names the ingress metrics too
        ("metric=requests&host=shop.test&job=web", "not job or alloc"),
        ("metric=bytes_sent&host=shop.test&alloc=abc", "not job or alloc"),
        ("metric=requests&host=shop.test&from=soon", "from must be"),
    ):
        r = server.get(f"/v1/metrics/query?{query}")
        assert_error(r, 400, "invalid_parameter")
        assert words in r.body["message"], (query, r.body)
    assert_error(
        server.get("/v1/metrics/query?metric=requests&host=shop.test&node=nowhere"),
        404,
        "node_not_found",
    )
