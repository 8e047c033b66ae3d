"""Ingress figures in the node's metrics: cumulative access-log counters
turned into rates, per-host history with a cap, a latency that may be
missing (NaN, skipped), and the sampler reading them from a callable.

The stats dicts are the shape ``AccessLogReader.snapshot()`` answers; the
callable handed to the sampler here is a stand-in returning such dicts (the
real reader behind real nginx is in test_ingress_node.py). Time is injected."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from agent.metrics.ingress import IngressRates, merge_points
from agent.metrics.sampler import MetricsSampler
from agent.metrics.store import JOURNAL, OTHER_HOSTS, MetricsStore
from tests.agent.metrics.support import T0, Clock, node


def stats(
    requests: int, five: int = 0, sent: int = 0, received: int = 0, p99: float | None = None
) -> dict[str, Any]:
    """One host's numbers as AccessLogReader.snapshot() gives them."""
    return {
        "requests": requests,
        "responses": {"1xx": 0, "2xx": requests - five, "3xx": 0, "4xx": 0, "5xx": five},
        "bytes_sent": sent,
        "bytes_received": received,
        "upstream_p50_ms": None if p99 is None else p99 / 2,
        "upstream_p99_ms": p99,
    }


def point(requests: float, p99: float | None = None, five: float = 0.0) -> dict[str, Any]:
    return {
        "requests": requests,
        "responses_5xx": five,
        "bytes_sent": requests * 100,
        "bytes_received": requests * 10,
        "upstream_p99_ms": p99,
    }


# --- rates -------------------------------------------------------------------------------------


def test_rates_are_per_second_between_rounds_and_survive_a_reset() -> None:
    rates = IngressRates()
    history, current = rates.update(T0, {"a.test": stats(100, 1, 5000, 700, p99=12.5)})
    assert history == {}  # the first round is the baseline
    assert current["a.test"]["requests"] == 100
    assert current["a.test"]["requests_per_second"] is None
    assert current["a.test"]["responses"]["5xx"] == 1
    assert current["a.test"]["upstream_p50_ms"] == 6.25

    history, current = rates.update(T0 + 10, {"a.test": stats(150, 6, 6000, 900, p99=20.0)})
    assert history["a.test"] == {
        "requests": 5.0,
        "responses_5xx": 0.5,
        "bytes_sent": 100.0,
        "bytes_received": 20.0,
        "upstream_p99_ms": 20.0,
    }
    assert current["a.test"]["requests_per_second"] == 5.0

    # the reader started over (agent restart): 30 since the reset, not -120
    history, _ = rates.update(T0 + 20, {"a.test": stats(30), "b.test": stats(40)})
    assert history["a.test"]["requests"] == 3.0
    assert history["a.test"]["upstream_p99_ms"] is None  # no upstream in the window
    assert history["b.test"]["requests"] == 4.0  # new since the last round: from 0

    # a round at the same instant measures nothing and moves no baseline
    history, current = rates.update(T0 + 20, {"a.test": stats(31)})
    assert history == {} and current["a.test"]["requests_per_second"] is None
    history, _ = rates.update(T0 + 30, {"a.test": stats(40)})
    assert history["a.test"]["requests"] == 1.0


def test_merged_points_add_rates_and_keep_the_worst_latency() -> None:
    merged = merge_points(merge_points(None, point(2.0, p99=None)), point(3.0, p99=40.0))
    assert merged["requests"] == 5.0 and merged["bytes_sent"] == 500.0
    assert merged["upstream_p99_ms"] == 40.0
    assert merge_points(merged, point(1.0, p99=10.0))["upstream_p99_ms"] == 40.0


# --- the store ---------------------------------------------------------------------------------


def test_a_hosts_history_and_current_figures() -> None:
    clock = Clock()
    store = MetricsStore(None, clock=clock, interval=10)
    for i in range(12):
        p99 = None if i in (3, 4) else float(i)  # two rounds without an upstream request
        current = {"a.test": {"requests": 10 * i, "requests_per_second": 1.0 * i}}
        store.record(clock.now, node(1), {}, {"a.test": point(1.0 * i, p99)}, current)
        clock.now += 10
    end = clock.now
    q = store.query("requests", host="a.test", start=T0, end=end)
    assert q["series"][0]["labels"] == {"host": "a.test"}
    assert q["series"][0]["points"] == [[T0 + 10 * i, float(i)] for i in range(12)]
    q = store.query("upstream_p99_ms", host="a.test", start=T0, end=end)
    assert [p[1] for p in q["series"][0]["points"]] == [0, 1, 2, 5, 6, 7, 8, 9, 10, 11]
    # a minute's average is over the rounds that had a latency (0,1,2,5: not 0,1,2,0,0,5)
    q = store.query("upstream_p99_ms", host="a.test", start=T0, end=end, step=60)
    assert q["series"][0]["points"] == [[T0, 2.0], [T0 + 60, 8.5]]
    # other scopes never see the host's series, nor the host the node's
    assert store.query("requests", start=T0, end=end)["series"] == []
    assert store.query("cpu", host="a.test", start=T0, end=end)["series"] == []
    assert store.query("requests", host="b.test", start=T0, end=end)["series"] == []
    assert store.ingress() == {"a.test": {"requests": 110, "requests_per_second": 11.0}}


def test_the_downsampled_tiers_skip_missing_latencies() -> None:
    clock = Clock()
    store = MetricsStore(None, clock=clock, interval=30)
    while clock.now < T0 + 2 * 24 * 3600:
        minute = (clock.now - T0) // 60
        p99 = None if minute % 2 else minute  # odd minutes: no upstream request at all
        store.record(clock.now, node(1), {}, {"a.test": point(1.0, p99)})
        clock.now += 30
    # older than the raw tier's 24 h: answered from the 1-minute averages
    q = store.query("upstream_p99_ms", host="a.test", start=T0, end=T0 + 600, step=60)
    assert q["step"] == 60
    assert q["series"][0]["points"] == [[T0 + 60 * m, float(m)] for m in range(0, 11, 2)]
    q = store.query("requests", host="a.test", start=T0, end=T0 + 600, step=60)
    assert len(q["series"][0]["points"]) == 11


def test_hosts_beyond_the_cap_share_one_series_and_idle_ones_make_room(tmp_path: Path) -> None:
    clock = Clock()
    store = MetricsStore(tmp_path, clock=clock, max_ingress_hosts=2, compact_interval=10**9)
    ingress = {
        "a.test": point(1.0, 5.0),
        "b.test": point(3.0, 9.0),
        "c.test": point(2.0, 7.0),
        OTHER_HOSTS: point(0.5, 30.0),  # the reader's own overflow
    }
    store.record(clock.now, node(1), {}, ingress)
    keys = {k for k in store.series if k.startswith("ingress:")}
    # the busiest new hosts got the two places; the third joined the reader's overflow
    assert keys == {"ingress:b.test", "ingress:c.test", f"ingress:{OTHER_HOSTS}"}
    q = store.query("requests", host=OTHER_HOSTS, start=T0, end=clock.now)
    assert q["series"][0]["points"] == [[T0, 1.5]]
    q = store.query("upstream_p99_ms", host=OTHER_HOSTS, start=T0, end=clock.now)
    assert q["series"][0]["points"] == [[T0, 30.0]]

    # an hour later, c.test is gone from the figures: d.test takes its place
    clock.now += 3601
    store.record(clock.now, node(1), {}, {"b.test": point(1.0), "d.test": point(4.0)})
    keys = {k for k in store.series if k.startswith("ingress:")}
    assert keys == {"ingress:b.test", "ingress:d.test", f"ingress:{OTHER_HOSTS}"}
    assert b'"evict":["c.test"]' in (tmp_path / JOURNAL).read_bytes()

    # a restart replays the journal into the same series (the eviction included)
    again = MetricsStore(tmp_path, clock=clock, max_ingress_hosts=2)
    assert set(again.series) == set(store.series)
    for host in ("b.test", "d.test", OTHER_HOSTS):
        before = store.query("requests", host=host, start=T0, end=clock.now)
        assert again.query("requests", host=host, start=T0, end=clock.now) == before
    assert again.ingress() == {}  # the counters are the reader's: they start over too
    again.close()
    third = MetricsStore(tmp_path, clock=clock, max_ingress_hosts=2)  # from the snapshot
    q = third.query("requests", host="d.test", start=T0, end=clock.now)
    assert q["series"][0]["points"] == [[T0 + 3600, 4.0]]  # buckets on multiples of 10 s


# --- the sampler -------------------------------------------------------------------------------


class StandInIngressStats:
    """Stands in for ``Agent.ingress_stats``: returns the stats dicts it is
    given, one per call (raises when told to, as a broken source would)."""

    def __init__(self, rounds: list[dict[str, dict[str, Any]] | Exception]) -> None:
        self.rounds = rounds

    def __call__(self) -> dict[str, dict[str, Any]]:
        answer = self.rounds.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_the_sampler_records_the_ingress_it_is_given(tmp_path: Path) -> None:
    clock = Clock()
    store = MetricsStore(tmp_path, clock=clock, interval=10)
    sampler = MetricsSampler(store, {}, data_dir=str(tmp_path), clock=clock)
    rnd = await sampler.sample([])  # no source: no ingress, as before
    assert rnd["ingress"] is None and store.ingress() == {}

    sampler.ingress_stats = StandInIngressStats(
        [
            {"a.test": stats(10, p99=4.0)},
            {"a.test": stats(70, 2, p99=8.0)},
            RuntimeError("the reader broke"),
            {"a.test": stats(130, 2, p99=6.0)},
        ]
    )
    for _ in range(4):
        clock.now += 10
        await sampler.sample([])
    q = store.query("requests", host="a.test", start=T0, end=clock.now)
    # 60 requests in 10 s, then 60 in the 20 s around the failed round
    assert q["series"][0]["points"] == [[T0 + 20, 6.0], [T0 + 40, 3.0]]
    q = store.query("responses_5xx", host="a.test", start=T0, end=clock.now)
    assert q["series"][0]["points"] == [[T0 + 20, 0.2], [T0 + 40, 0.0]]
    current = store.ingress()["a.test"]
    assert current["requests"] == 130 and current["requests_per_second"] == 3.0
    assert current["upstream_p99_ms"] == 6.0 and current["responses"]["5xx"] == 2
    # the node's own series went on in every round, the failed one included
    assert len(store.query("cpu", start=T0, end=clock.now)["series"][0]["points"]) == 5

    sampler.ingress_stats = StandInIngressStats([{}])  # the ingress stopped
    clock.now += 10
    await sampler.sample([])
    assert store.ingress() == {}
    assert not math.isnan(store.series["ingress:a.test"].raw[-1][1][0])
