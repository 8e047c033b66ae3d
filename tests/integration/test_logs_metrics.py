"""Logs and metrics end to end (issue 5, parts 3 and 4): three real heroctld
processes with their agents, busybox containers on a real Docker engine.

- an SSE stream on a follower merges the lines of containers running on
  two different nodes, none lost, and picks up an allocation placed later;
- the logs of a stopped allocation stay readable from any server;
- the metrics history of a running busybox job has real samples (the
  agents sample every second here: HEROCTL_METRICS_INTERVAL=1), the
  snapshot and the Prometheus text show the job, and the history survives
  a restart of the node's daemon (whose agent adopts the container and
  resumes its log where it stopped: no line lost, none twice).

Every wait polls a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from domain.crypto import KeyMaterial
from tests.api.authutil import as_, assert_error, make_token, put_policy
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.sse import SseReader
from tests.support.workloads import ROOT, docker_unavailable, printer_job

_SKIP = docker_unavailable()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(
        tmp_path_factory.mktemp("logs-metrics"),
        3,
        agent=True,
        env={"HEROCTL_METRICS_INTERVAL": "1", "HEROCTL_SSE_PING_INTERVAL": "1"},
    )
    c.start()
    try:
        wait_until(
            lambda: (
                len([n for n in c.servers[0].get("/v1/nodes").body if n["status"] == "ready"]) == 3
            ),
            60,
            message="three ready nodes",
        )
        yield c
    finally:
        c.stop()


def running(server: Server, job: str, count: int) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        allocs = [
            a for a in server.get(f"/v1/allocations?job={job}").body if a["desired_status"] == "run"
        ]
        good = [a for a in allocs if a["status"] == "running"]
        return good if len(good) == count == len(allocs) else None

    return wait_until(ready, 90, 0.2, message=f"{count} running allocations of {job}")


def submit(server: Server, job: dict[str, Any]) -> None:
    r = server.post("/v1/jobs", job)
    assert r.status in (200, 201), r.body


def numbers(lines: list[dict[str, Any]], prefix: str = "line ") -> list[int]:
    return [int(d["line"][len(prefix) :]) for d in lines if d["line"].startswith(prefix)]


def consecutive(values: list[int]) -> bool:
    return values == list(range(values[0], values[0] + len(values))) if values else True


def server_of(cluster: Cluster, alloc: dict[str, Any]) -> Server:
    return cluster.by_name(alloc["node_name"])


# --- logs ------------------------------------------------------------------------------------


def test_job_stream_on_a_follower_merges_two_nodes(cluster: Cluster) -> None:
    leader = cluster.leader()
    submit(leader, printer_job("printer", 2))
    allocs = running(leader, "printer", 2)
    nodes = {a["node_name"] for a in allocs}
    assert len(nodes) == 2, allocs
    followers = [s for s in cluster.servers if s is not leader]
    # A follower; the one running neither allocation when there is one (both remote).
    follower = next((s for s in followers if s.name not in nodes), followers[0])
    reader = SseReader(follower.url + "/v1/logs?job=printer&stream=true", cluster.token)
    try:
        assert reader.response.status == 200
        assert reader.response.getheader("Content-Type", "").startswith("text/event-stream")
        ids = {a["id"] for a in allocs}

        def from_both(least: int) -> bool:
            lines = reader.logs()
            return all(len(numbers([d for d in lines if d["alloc"] == i])) >= least for i in ids)

        wait_until(lambda: from_both(40), 60, 0.1, message="40 lines of each allocation")
        lines = reader.logs()
        for alloc_id in ids:
            mine = [d for d in lines if d["alloc"] == alloc_id]
            assert consecutive(numbers(mine)), numbers(mine)[:50]
            assert consecutive(numbers(mine, "err ")), "stderr too, in order"
            assert {d["stream"] for d in mine} == {"stdout", "stderr"}
            assert {d["task"] for d in mine} == {"main"}
            assert set(mine[0]) == {"alloc", "task", "stream", "ts", "us", "line"}
        # The initial backlog is the last 10 lines of each allocation (5 of each stream).
        assert len(numbers(lines)) > 10
        # Scaled to three: the stream picks up the new allocation from its first line.
        submit(leader, printer_job("printer", 3))
        third = next(a for a in running(leader, "printer", 3) if a["id"] not in ids)
        wait_until(
            lambda: len(numbers([d for d in reader.logs() if d["alloc"] == third["id"]])) >= 20,
            60,
            0.1,
            message="lines of the third allocation",
        )
        new = numbers([d for d in reader.logs() if d["alloc"] == third["id"]])
        assert new[0] == 0 and consecutive(new)
        assert not [e for e, _ in reader.events if e == "error"], reader.events[:5]
    finally:
        reader.close()


def test_alloc_tail_filters_and_prefix(cluster: Cluster) -> None:
    server = cluster.servers[0]
    alloc = running(server, "printer", 3)[0]
    for s in cluster.servers:  # any server answers, the node's own or another
        r = s.get(f"/v1/logs/{alloc['id']}?lines=7")
        assert r.status == 200, r.body
        assert len(r.body) == 7 and {d["alloc"] for d in r.body} == {alloc["id"]}
    err = server.get(f"/v1/logs/{alloc['id'][:8]}?lines=5&type=stderr").body
    assert len(err) == 5 and {d["stream"] for d in err} == {"stderr"}
    assert consecutive(numbers(err, "err "))
    everything = server.get("/v1/logs?job=printer&lines=30").body
    assert len(everything) == 30
    assert [d["us"] for d in everything] == sorted(d["us"] for d in everything)
    assert_error(server.get(f"/v1/logs/{alloc['id']}?type=both"), 400, "invalid_parameter")
    assert_error(server.get("/v1/logs/doesnotexist"), 404, "allocation_not_found")
    assert_error(server.get("/v1/logs?job=nope"), 404, "job_not_found")
    assert_error(server.get("/v1/logs"), 400, "missing_parameter")


def test_logs_of_a_stopped_allocation_stay_readable(cluster: Cluster) -> None:
    leader = cluster.leader()
    alloc = running(leader, "printer", 3)[0]
    before = numbers(leader.get(f"/v1/logs/{alloc['id']}?lines=1&type=stdout").body)[0]
    r = leader.post(f"/v1/allocations/{alloc['id']}/stop")
    assert r.status == 200, r.body

    def gone() -> bool:
        doc = leader.get(f"/v1/allocations/{alloc['id']}").body
        return doc["status"] == "complete"

    wait_until(gone, 60, 0.2, message="the allocation to stop")
    import docker

    client = docker.from_env(timeout=30)
    try:
        wait_until(
            lambda: (
                not client.containers.list(
                    all=True, filters={"label": f"heroctl.alloc_id={alloc['id']}"}
                )
            ),
            60,
            message="its container removed",
        )
    finally:
        client.close()
    # Its container is gone; its logs are not, on any server.
    for s in cluster.servers:
        lines = s.get(f"/v1/logs/{alloc['id']}?lines=all&type=stdout").body
        got = numbers(lines)
        assert got[0] == 0 and consecutive(got) and got[-1] >= before, got[-5:]
    # The job's tail still includes it (the replacement is running meanwhile).
    running(leader, "printer", 3)
    merged = leader.get("/v1/logs?job=printer&lines=all").body
    assert alloc["id"] in {d["alloc"] for d in merged}


def test_logs_need_the_logs_resource(cluster: Cluster) -> None:
    server = cluster.servers[0]
    put_policy(server, "lm-jobs", {"jobs": "read", "allocations": "read"})
    put_policy(server, "lm-logs", {"logs": "read", "metrics": "read"})
    jobs_only = make_token(server, ["lm-jobs"])["secret_id"]
    made = make_token(server, ["lm-logs"])
    logs = made["secret_id"]
    wait_until(lambda: as_(server, logs, "GET", "/v1/logs?job=printer").status == 200, 10)
    # A follow opened with a token ends once the token is deleted.
    reader = SseReader(server.url + "/v1/logs?job=printer&stream=true", logs)
    try:
        wait_until(reader.logs, 30, message="a line through the follow")
        assert server.delete(f"/v1/acl/tokens/{made['accessor_id']}").status == 200
        wait_until(reader.ended, 20, 0.2, "the follow closed by the server")
    finally:
        reader.close()
    logs = make_token(server, ["lm-logs"])["secret_id"]
    wait_until(lambda: as_(server, logs, "GET", "/v1/logs?job=printer").status == 200, 10)
    assert_error(as_(server, jobs_only, "GET", "/v1/logs?job=printer"), 403)
    assert_error(as_(server, jobs_only, "GET", "/v1/metrics"), 403)
    assert as_(server, logs, "GET", "/v1/metrics").status == 200
    # the agent endpoints are for servers (their hs_ credential) only
    alloc = server.get("/v1/allocations?job=printer").body[0]
    assert_error(as_(server, logs, "GET", f"/v1/agent/logs/{alloc['id']}"), 403)
    assert_error(as_(server, logs, "GET", "/v1/agent/metrics/current"), 403)
    assert_error(server.get(f"/v1/agent/logs/{alloc['id']}"), 403)  # management: no either
    hs = KeyMaterial(cluster.cluster_key).server_token("server-2", server.name)
    r = as_(server, hs, "GET", f"/v1/agent/logs/{alloc['id']}?lines=1&exists=true")
    assert r.status in (200, 404), r.raw  # 404 logs_not_found: not on this node
    assert as_(server, hs, "GET", "/v1/agent/metrics/current").status == 200


# --- metrics ------------------------------------------------------------------------------------


def test_metrics_history_of_a_running_job_has_real_samples(cluster: Cluster) -> None:
    follower = cluster.followers()[0]
    allocs = running(follower, "printer", 3)
    ids = {a["id"] for a in allocs}

    def history(metric: str) -> dict[str, Any] | None:
        r = follower.get(f"/v1/metrics/query?metric={metric}&job=printer&from=-10m")
        assert r.status == 200, r.body
        series = {s["alloc"]: s for s in r.body["series"] if s["alloc"] in ids}
        if len(series) == 3 and all(len(s["points"]) >= 3 for s in series.values()):
            return r.body
        return None

    memory = wait_until(lambda: history("memory"), 60, 0.5, message="3 samples per allocation")
    assert memory["unit"] == "MB" and memory["scope"] == "job" and memory["errors"] == []
    assert {s["node"] for s in memory["series"] if s["alloc"] in ids} == {
        a["node_name"] for a in allocs
    }
    for s in memory["series"]:
        if s["alloc"] in ids:
            assert all(0 < v < 32 for _, v in s["points"]), s["points"]  # real, under its limit
            stamps = [t for t, _ in s["points"]]
            assert stamps == sorted(stamps) and time.time() - stamps[-1] < 30
    assert memory["total"]["points"] and memory["total"]["points"][-1][1] > 0
    cpu = history("cpu")
    assert cpu is not None
    assert all(v >= 0 for s in cpu["series"] for _, v in s["points"])
    assert any(v > 0 for s in cpu["series"] for _, v in s["points"]), "the printers use cpu"
    # an allocation's and a node's own series
    one = next(iter(allocs))
    r = follower.get(f"/v1/metrics/query?metric=memory&alloc={one['id']}&from=-5m&step=2s")
    assert r.status == 200 and r.body["step"] >= 2 and len(r.body["series"]) == 1
    r = follower.get(f"/v1/metrics/query?metric=disk&node={one['node_name']}&from=-5m")
    assert r.status == 200 and r.body["series"][0]["points"][-1][1] > 0
    everyone = follower.get("/v1/metrics/query?metric=cpu&from=-5m").body
    assert {s["node"] for s in everyone["series"]} == {s.name for s in cluster.servers}
    assert_error(follower.get("/v1/metrics/query?metric=heat"), 400, "invalid_parameter")
    assert_error(
        follower.get("/v1/metrics/query?metric=disk&job=printer"), 400, "invalid_parameter"
    )
    assert_error(follower.get("/v1/metrics/query?metric=cpu&from=soon"), 400)
    # `heroctl metrics --from -1h30m`: the API reads the CLI's durations (domain.durations).
    r = follower.get(f"/v1/metrics/query?metric=memory&alloc={one['id']}&from=-1h30m&step=1m30s")
    assert r.status == 200 and r.body["step"] == 90 and r.body["series"][0]["points"], r.body
    assert_error(
        follower.get("/v1/metrics/query?metric=cpu&from=-1h%2030m"), 400, "invalid_parameter"
    )


def test_cluster_snapshot_and_prometheus(cluster: Cluster) -> None:
    leader = cluster.leader()
    server = cluster.followers()[-1]

    def snap() -> dict[str, Any] | None:
        body = server.get("/v1/metrics").body
        job = next((j for j in body["jobs"] if j["name"] == "printer"), None)
        sampled = all(n["memory"]["used_mb"] for n in body["nodes"])
        return body if job and job["running"] == 3 and job["memory_mb"] > 0 and sampled else None

    body = wait_until(snap, 60, 0.5, message="a snapshot with the job's usage")
    assert body["raft"]["leader"] == leader.name and body["raft"]["index"] > 0
    assert body["allocations"]["running"] >= 3 and body["allocations"]["complete"] >= 1
    assert {n["name"] for n in body["nodes"]} == {s.name for s in cluster.servers}
    for n in body["nodes"]:
        assert n["cpu"]["total_mhz"] == 2000 and n["memory"]["total_mb"] == 1024
        assert n["cpu"]["used_percent"] is not None and n["disk"]["total_mb"] > 0
        assert n["allocations"] == 1
    assert set(body["api"]["servers"]) == {s.name for s in cluster.servers}
    assert body["api"]["requests_per_second"] > 0  # these tests' requests, the agents'
    assert body["unreachable_servers"] == []
    prom = server.get("/v1/metrics?format=prometheus")
    assert prom.status == 200
    assert prom.header("Content-Type").startswith("text/plain")
    text = prom.raw.decode()
    assert 'heroctl_job_running_allocations{job="printer"} 3.0' in text
    assert 'heroctl_allocations{status="running"}' in text
    assert f'heroctl_raft_leader{{server="{leader.name}"}} 1.0' in text
    assert "heroctl_node_memory_used_bytes{node=" in text
    assert_error(server.get("/v1/metrics?format=xml"), 400, "invalid_parameter")


def test_history_and_logs_survive_a_restart_of_the_node(cluster: Cluster) -> None:
    """The daemon of a node running a printer restarts: its agent adopts the
    container, the metrics from before the restart are still there, and the
    log resumes where it stopped (every line once)."""
    leader = cluster.leader()
    allocs = running(leader, "printer", 3)
    alloc = next(a for a in allocs if a["node_name"] != leader.name)
    node = server_of(cluster, alloc)
    path = f"/v1/metrics/query?metric=memory&alloc={alloc['id']}&from=-30m"
    before = leader.get(path).body["series"][0]["points"]
    assert len(before) >= 3
    node.stop()
    restarted_at = time.time()
    node.start(peers=cluster.peers)
    cluster.wait_ready([node], timeout=60)

    def resumed() -> list[list[float]] | None:
        r = leader.get(path)
        if r.status != 200 or not r.body["series"]:
            return None
        points = r.body["series"][0]["points"]
        return points if points[-1][0] > restarted_at + 1 else None

    after = wait_until(resumed, 60, 0.5, message="samples after the restart")
    assert after[: len(before)] == before  # the history from before is kept
    # the same container, adopted, and its log without a gap nor a duplicate
    assert running(leader, "printer", 3)[0]["id"] in {a["id"] for a in allocs}
    last = numbers(leader.get(f"/v1/logs/{alloc['id']}?lines=1&type=stdout").body)[0]

    def moved_on() -> bool:
        got = numbers(leader.get(f"/v1/logs/{alloc['id']}?lines=1&type=stdout").body)
        return bool(got) and got[0] >= last + 20

    wait_until(moved_on, 30, 0.2, message="the log to go on")
    lines = numbers(leader.get(f"/v1/logs/{alloc['id']}?lines=all&type=stdout").body)
    assert lines[0] == 0 and consecutive(lines), [
        (a, b) for a, b in zip(lines, lines[1:], strict=False) if b != a + 1
    ][:5]


# --- CLI ------------------------------------------------------------------------------------------


def heroctl(server: Server, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HEROCTL_ADDR": server.url,
        "HEROCTL_TOKEN": token or "",
        "XDG_CONFIG_HOME": str(ROOT / ".no-such-config"),
    }
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_logs_and_metrics(cluster: Cluster) -> None:
    server = cluster.followers()[0]
    alloc = running(server, "printer", 3)[0]
    r = heroctl(server, cluster.token, "logs", alloc["id"][:8], "-n", "6")
    assert r.returncode == 0, r.stderr
    out, err = r.stdout.splitlines(), r.stderr.splitlines()
    assert len(out) + len(err) == 6 and out and err
    assert all(x.startswith("line ") for x in out) and all(x.startswith("err ") for x in err)
    r = heroctl(
        server, cluster.token, "logs", "--job", "printer", "-n", "9", "--type", "stdout", "-t"
    )
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()
    assert len(rows) == 9 and all(
        re.match(r"\[[0-9a-f]{8} main\] \d{4}-\d\d-\d\dT", x) for x in rows
    )
    r = heroctl(server, cluster.token, "--json", "logs", alloc["id"], "-n", "2")
    assert [json.loads(x)["alloc"] for x in r.stdout.splitlines()] == [alloc["id"]] * 2
    # -f: lines keep coming until interrupted
    env = {**os.environ, "HEROCTL_ADDR": server.url, "HEROCTL_TOKEN": cluster.token or ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "logs", "--job", "printer", "-f", "--type", "stdout"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = [proc.stdout.readline() for _ in range(60)]
        assert len({x.split("]")[0] for x in seen}) == 3, "lines of the three allocations"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    r = heroctl(server, cluster.token, "metrics")
    assert r.returncode == 0, r.stderr
    assert "Leader" in r.stdout and "printer" in r.stdout and "server-3" in r.stdout
    r = heroctl(server, cluster.token, "metrics", "--job", "printer", "--from", "-5m")
    assert r.returncode == 0, r.stderr
    assert "Job printer: cpu" in r.stdout and "Job printer: memory" in r.stdout
    assert "┤" in r.stdout and alloc["id"][:8] in r.stdout
    r = heroctl(server, cluster.token, "metrics", "--node", alloc["node_name"], "--height", "3")
    assert r.returncode == 0 and "disk (MB)" in r.stdout
    r = heroctl(server, cluster.token, "logs", "nosuchalloc")
    assert r.returncode == 1 and "allocation_not_found" in r.stderr
