"""`heroctl node|alloc ...` and `heroctl job run` following a placement.

Against one real heroctld (the harness; started with --no-agent). Nodes come
from `FakeAgent`, a stand-in for the node agent driven by the test: it uses
the agent's real routes — `POST /v1/nodes/register`, a heartbeat thread on
`POST /v1/nodes/{id}/heartbeat` (the leader marks a node down after 10 s
without one), and `POST /v1/allocations/status` to report what it "runs" —
but starts no container. Each test pins its jobs to its own nodes with a
`node.name` constraint, so the tests of this module do not see each other's
allocations. Waits poll a condition with a deadline; nothing sleeps.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import Result

from cli.output import fmt_seconds, used_of
from cli.placement import Placement, failure_text
from client import format_wait, response_index
from domain.durations import parse_duration
from tests.cli.results import ok
from tests.support.cluster import Server, wait_until
from tests.support.nodes import HandNode

NOW_MS = lambda: int(time.time() * 1000)  # noqa: E731


class FakeAgent:
    """A node as the servers see it, driven by the test (no containers).

    `auto_run` makes it act on its allocations like a real agent would, at
    once: pending + desired run -> running and healthy; desired stop ->
    complete. Without it, the test reports statuses itself with `report`.
    """

    HEARTBEAT_EVERY = 1.0  # seconds; the servers' TTL is 10 s

    def __init__(
        self,
        server: Server,
        name: str,
        *,
        cpu: int = 4000,
        memory: int = 4096,
        disk: int = 20_000,
        ports: tuple[int, int] = (21000, 21999),
        auto_run: bool = False,
    ) -> None:
        self.server = server
        self.node = HandNode(server, name=name)
        self.id = self.node.id
        self.name = name
        self.resources = {"cpu": cpu, "memory": memory, "disk": disk}
        self.ports = ports
        self.usage = {"cpu": 250, "memory": 512, "disk": 1000}
        self.auto_run = auto_run
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def start(self) -> FakeAgent:
        r = self.node.register(
            address="127.0.0.1",
            resources=self.resources,
            drivers=["docker"],
            port_range=list(self.ports),
        )
        assert r.status == 200, (r.status, r.body)
        self.heartbeat()
        self._spawn(self._heartbeats)
        if self.auto_run:
            self._spawn(self._run_allocations)
        return self

    def _spawn(self, fn: Callable[[], None]) -> None:
        t = threading.Thread(target=fn, name=f"fake-agent-{self.name}", daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(10)

    def heartbeat(self) -> None:
        r = self.node.heartbeat(self.usage)
        if r.status != 200:
            self.errors.append(f"heartbeat: {r.status} {r.body}")

    def _heartbeats(self) -> None:
        while not self.stopping.wait(self.HEARTBEAT_EVERY):
            try:
                self.heartbeat()
            except OSError as e:  # the server is being stopped
                self.errors.append(f"heartbeat: {e!r}")

    def report(self, *updates: dict[str, Any]) -> dict[str, Any]:
        r = self.node.report(list(updates))
        assert r.status == 200 and not r.body["refused"], (r.status, r.body)
        return r.body

    def running(self, alloc: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """The update an agent sends once an allocation's tasks started."""
        now = NOW_MS()
        return {
            "id": alloc["id"],
            "status": "running",
            "healthy": True,
            "task_states": {
                "web": {"state": "running", "restarts": 0, "started_at": now, "failed": False}
            },
            "events": [
                {"ts": now, "type": "started", "message": "fake agent started web", "task": "web"}
            ],
            **extra,
        }

    def _run_allocations(self) -> None:
        """The agent's loop: a blocking query on this node's allocations, then act."""
        index = 0
        while not self.stopping.is_set():
            try:
                r = self.server.get(
                    f"/v1/nodes/{self.id}/allocations?index={index}&wait=1s", timeout=15
                )
                if r.status != 200:
                    self.errors.append(f"allocations: {r.status} {r.body}")
                    self.stopping.wait(0.2)
                    continue
                index = int(r.header("X-HeroCtl-Index") or 0)
                updates = []
                for a in r.body:
                    if a["desired_status"] == "run" and a["status"] == "pending":
                        updates.append(self.running(a))
                    elif a["desired_status"] == "stop" and a["status"] in ("pending", "running"):
                        updates.append({"id": a["id"], "status": "complete"})
                if updates:
                    self.report(*updates)
            except (OSError, AssertionError) as e:
                self.errors.append(f"run loop: {e!r}")
                self.stopping.wait(0.2)


@pytest.fixture(scope="module")
def agents(server: Server) -> Iterator[Callable[..., FakeAgent]]:
    """Start fake agents; all keep heartbeating until the module ends (no node goes down)."""
    started: list[FakeAgent] = []

    def start(name: str, **kw: Any) -> FakeAgent:
        agent = FakeAgent(server, name, **kw).start()
        started.append(agent)
        return agent

    try:
        yield start
    finally:
        for agent in started:
            agent.stop()


def failed(result: Result) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert result.stderr.startswith("Error: "), result.stderr
    return result.stderr


def rows(out: str) -> dict[str, list[str]]:
    """Output lines, split, by their first cell (the first line wins)."""
    out_rows: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.strip():
            out_rows.setdefault(line.split()[0], line.split())
    return out_rows


def job_spec(name: str, node: str, *, count: int = 1, memory: int = 64, **task: Any) -> str:
    return json.dumps(
        {
            "name": name,
            "type": "service",
            "groups": [
                {
                    "name": "app",
                    "count": count,
                    "constraints": [{"attribute": "node.name", "operator": "=", "value": node}],
                    "tasks": [
                        {
                            "name": "web",
                            "driver": "docker",
                            "image": "heroctl-test/busybox:latest",
                            "resources": {"cpu": 100, "memory": memory},
                            "ports": [{"name": "http", "to": 80}],
                            **task,
                        }
                    ],
                }
            ],
        }
    )


def allocs_of(server: Server, job: str, n: int) -> list[dict[str, Any]]:
    """Wait until the scheduler placed `n` allocations of `job` that should run."""

    def placed() -> list[dict[str, Any]] | None:
        live = [
            a for a in server.get(f"/v1/allocations?job={job}").body if a["desired_status"] == "run"
        ]
        return live if len(live) >= n else None

    return wait_until(placed, 15, message=f"{n} allocations of {job}")


# --- nodes ------------------------------------------------------------------------------


def test_node_list_and_status(heroctl, server: Server, agents) -> None:
    a = agents("nodes-a", cpu=2000, memory=1024)
    b = agents("nodes-b")
    ok(heroctl("job", "run", "--detach", "-", input=job_spec("nodes-job", a.name, count=2)))
    allocs_of(server, "nodes-job", 2)

    table = rows(ok(heroctl("node", "list")))
    assert table["NAME"] == [
        "NAME",
        "ID",
        "STATUS",
        "ELIGIBILITY",
        "ALLOCS",
        "CPU",
        "MEMORY",
        "ADDRESS",
    ]
    assert table[a.name][1:5] == [a.id[:8], "ready", "eligible", "2"]
    assert " ".join(table[a.name][5:]) == "200/2000 MHz (10%) 128/1024 MB (12%) 127.0.0.1"
    assert table[b.name][1:5] == [b.id[:8], "ready", "eligible", "0"]

    listed = {n["id"]: n for n in json.loads(ok(heroctl("node", "list", "--json")))}
    assert listed[a.id]["name"] == a.name and listed[a.id]["allocated"]["allocations"] == 2

    # The usage a heartbeat carried shows as USED (the first beat was sent at start).
    wait_until(lambda: server.get(f"/v1/nodes/{a.id}").body["resources"]["cpu"]["used"] == 250)
    by_name = ok(heroctl("node", "status", a.name))
    assert by_name == ok(heroctl("node", "status", a.id[:6]))  # an id prefix works too
    lines = rows(by_name)
    assert lines["ID"] == ["ID", a.id]
    assert lines["Status"] == ["Status", "ready"]
    assert lines["Drain"] == ["Drain", "no"]
    assert lines["cpu"] == ["cpu", "2000", "MHz", "200/2000", "(10%)", "250/2000", "(12%)"]
    assert lines["memory"] == ["memory", "1024", "MB", "128/1024", "(12%)", "512/1024", "(50%)"]
    assert "Allocations:" in by_name
    ids = [a_["id"] for a_ in server.get(f"/v1/allocations?node={a.id}").body]
    for alloc_id in ids:
        assert lines[alloc_id[:8]][2:4] == ["pending", "run"]

    doc = json.loads(ok(heroctl("node", "status", a.name, "--json")))
    assert doc["id"] == a.id and {x["id"] for x in doc["allocations"]} == set(ids)

    err = failed(heroctl("node", "status", "no-such-node"))
    assert "node 'no-such-node' does not exist (node_not_found" in err
    assert not a.errors and not b.errors


def test_node_list_wait_prints_once_something_changed(heroctl, server: Server, agents) -> None:
    n = agents("wait-node")
    stop = threading.Event()

    def flip() -> None:  # changes the node list until the CLI has seen a change
        eligible = False
        while not stop.wait(0.2):
            server.post(f"/v1/nodes/{n.id}/eligibility", {"eligible": eligible})
            eligible = not eligible

    before = {x["id"]: x for x in server.get("/v1/nodes").body}[n.id]
    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    try:
        result = heroctl("node", "list", "--wait", "30s", "--json")
    finally:
        stop.set()
        flipper.join(10)
    after = {x["id"]: x for x in json.loads(ok(result))}[n.id]
    assert after["modify_index"] > before["modify_index"]
    assert "No change" not in result.stderr

    # Nothing changes for this filter: the list comes back after the wait, said so.
    started = time.monotonic()
    quiet = heroctl("alloc", "list", "--job", "no-such-job", "--wait", "1s")
    assert ok(quiet) == "No allocations.\n"
    assert quiet.stderr == "No change within 1s.\n"
    assert time.monotonic() - started >= 1.0


def test_node_drain_and_eligibility(heroctl, server: Server, agents) -> None:
    n = agents("drain-node")
    ok(heroctl("job", "run", "--detach", "-", input=job_spec("drain-job", n.name)))
    allocs_of(server, "drain-job", 1)

    out = ok(heroctl("node", "drain", n.name, "--deadline", "1s", "--yes"))
    assert out.startswith(f"Node '{n.name}' is draining: ")
    assert "(deadline 1s)" in out
    assert rows(ok(heroctl("node", "list")))[n.name][2:4] == ["draining", "ineligible"]
    err = failed(heroctl("node", "eligibility", n.name, "--enable"))
    assert "a draining node cannot be made eligible" in err and "(node_draining" in err

    # The deadline passes: what is left is stopped and the drain completes.
    def drained() -> bool:
        return server.get(f"/v1/nodes/{n.id}").body["drain"] is None

    wait_until(drained, 15, message="drain complete")
    status = rows(ok(heroctl("node", "status", n.name)))
    assert status["Eligibility"] == ["Eligibility", "ineligible"]
    assert status["Last"][:3] == ["Last", "drain", "completed"]
    stopped = server.get("/v1/allocations?job=drain-job").body
    assert [a["desired_reason"] for a in stopped] == ["node drain deadline reached"]

    assert ok(heroctl("node", "eligibility", n.name, "--enable")) == (
        f"Node '{n.name}' is eligible for new allocations.\n"
    )
    doc = json.loads(ok(heroctl("node", "eligibility", n.id[:8], "--disable", "--json")))
    assert doc["eligibility"] == "ineligible"
    ok(heroctl("node", "eligibility", n.name, "--enable"))

    # A drain with the server's default deadline, cancelled (twice: eligible / kept out).
    doc = json.loads(ok(heroctl("node", "drain", n.name, "--json", "-y")))
    assert doc["drain"]["deadline_seconds"] == 3600 and doc["eligibility"] == "ineligible"
    assert ok(heroctl("node", "drain", n.name, "--disable")) == (
        f"Drain of node '{n.name}' cancelled; it is eligible for new allocations.\n"
    )
    ok(heroctl("node", "drain", n.name, "--deadline", "10m", "--yes"))
    assert ok(heroctl("node", "drain", n.name, "--disable", "--keep-ineligible")) == (
        f"Drain of node '{n.name}' cancelled; it stays ineligible for new allocations.\n"
    )
    assert server.get(f"/v1/nodes/{n.id}").body["eligibility"] == "ineligible"

    assert heroctl("node", "drain", n.name, "--keep-ineligible").exit_code == 2
    assert heroctl("node", "drain", n.name, "--disable", "--deadline", "5m").exit_code == 2
    assert heroctl("node", "eligibility", n.name).exit_code == 2
    assert heroctl("node", "drain", n.name, "--deadline", "soon").exit_code == 2
    assert not n.errors


# --- allocations ------------------------------------------------------------------------


def test_alloc_list_status_and_stop(heroctl, server: Server, agents) -> None:
    n = agents("alloc-node")
    ok(heroctl("job", "run", "--detach", "-", input=job_spec("alloc-job", n.name, count=2)))
    first, second = sorted(allocs_of(server, "alloc-job", 2), key=lambda a: a["index"])

    table = rows(ok(heroctl("alloc", "list", "--job", "alloc-job")))
    assert table["ID"] == [
        "ID",
        "NAME",
        "NODE",
        "STATUS",
        "DESIRED",
        "HEALTHY",
        "VERSION",
        "CREATED",
    ]
    assert table[first["id"][:8]][1:7] == ["alloc-job.app[0]", n.name, "pending", "run", "-", "0"]
    assert set(rows(ok(heroctl("alloc", "list", "--node", n.name)))) == {
        "ID",
        first["id"][:8],
        second["id"][:8],
    }

    # The node reports the first one running after a restart, with its events.
    started = NOW_MS()  # after the placement: the timeline is sorted by time
    n.report(
        n.running(
            first,
            task_states={
                "web": {"state": "running", "restarts": 1, "started_at": started, "exit_code": None}
            },
            events=[
                {
                    "ts": started - 2,
                    "type": "started",
                    "message": "container 1 up",
                    "task": "web",
                },
                {"ts": started - 1, "type": "exited", "message": "exit code 1", "task": "web"},
                {"ts": started, "type": "restarted", "message": "restart 1", "task": "web"},
            ],
        )
    )
    running = rows(ok(heroctl("alloc", "list", "--job", "alloc-job", "--status", "running")))
    assert set(running) == {"ID", first["id"][:8]}
    assert running[first["id"][:8]][3:6] == ["running", "run", "yes"]
    assert json.loads(
        ok(heroctl("alloc", "list", "--status", "running", "--json", "--job", "alloc-job"))
    ) == (server.get("/v1/allocations?job=alloc-job&status=running").body)

    out = ok(heroctl("alloc", "status", first["id"][:6]))
    lines = rows(out)
    port = server.get(f"/v1/allocations/{first['id']}").body["ports"]["http"]
    assert lines["ID"] == ["ID", first["id"]]
    assert lines["Job"] == ["Job", "alloc-job", "(version", "0,", "service)"]
    assert lines["Node"] == ["Node", n.name, f"({n.id[:8]})"]
    assert lines["Status"] == ["Status", "running"] and lines["Healthy"] == ["Healthy", "yes"]
    assert lines["Restarts"] == ["Restarts", "1"]
    assert lines["Ports"] == ["Ports", "http", f"127.0.0.1:{port}"]
    assert lines["TASK"] == [
        "TASK",
        "STATE",
        "RESTARTS",
        "EXIT",
        "CODE",
        "STARTED",
        "FINISHED",
        "FAILED",
    ]
    assert lines["web"][:4] == ["web", "running", "1", "-"]
    assert lines["web"][4:7] == ["0s", "ago", "-"]
    # The timeline, oldest first, each with how long ago.
    timeline = out[out.index("Events:") :].splitlines()[2:]
    assert [line.split()[2] for line in timeline] == ["placed", "started", "exited", "restarted"]
    assert timeline[1].split()[:2] == ["0s", "ago"] and timeline[1].endswith("container 1 up")
    assert json.loads(ok(heroctl("alloc", "status", first["id"], "--json"))) == (
        server.get(f"/v1/allocations/{first['id']}").body
    )

    # Stop the second: desired stop, and the scheduler places a replacement.
    out = ok(heroctl("alloc", "stop", second["id"][:8]))
    assert out == (
        f"Allocation {second['id'][:8]} (alloc-job.app[1]) on {n.name} is stopping: "
        "stopped by a user; the scheduler places a replacement.\n"
    )
    replacement = wait_until(
        lambda: [
            a
            for a in allocs_of(server, "alloc-job", 2)
            if a["id"] not in (first["id"], second["id"])
        ],
        message="a replacement",
    )[0]
    table = rows(ok(heroctl("alloc", "list", "--job", "alloc-job")))
    assert table[second["id"][:8]][3:5] == ["pending", "stop"]
    assert table[replacement["id"][:8]][1] == "alloc-job.app[1]"
    assert "stop (stopped by a user)" in ok(heroctl("alloc", "status", second["id"]))

    err = failed(heroctl("alloc", "status", "ffffffffff"))
    assert "allocation 'ffffffffff' does not exist (allocation_not_found" in err
    assert heroctl("alloc", "list", "--status", "bogus").exit_code == 2
    assert not n.errors


# --- job run ----------------------------------------------------------------------------


def test_job_run_detach_returns_after_submit(heroctl, server: Server, agents) -> None:
    n = agents("detach-node")  # never reports anything: following would not end
    out = ok(heroctl("job", "run", "--detach", "-", input=job_spec("detach-job", n.name)))
    assert re.fullmatch(r"Job 'detach-job' registered: version 0, job modify index \d+\.\n", out)
    doc = json.loads(
        ok(heroctl("job", "run", "--detach", "--json", "-", input=job_spec("detach-job", n.name)))
    )
    assert doc["name"] == "detach-job" and doc["version"] == 1

    # Not detached, it follows until its --timeout: exit 1, and why.
    result = heroctl("job", "run", "--timeout", "1s", "-", input=job_spec("detach-job", n.name))
    err = failed(result)
    assert "job 'detach-job' version 2 is not running after 1s" in err
    assert "see `heroctl alloc list --job detach-job`" in err
    assert "Following the placement" in result.stdout


def test_job_run_reports_a_placement_failure(heroctl, server: Server, agents) -> None:
    agents("small-node", memory=1024)
    result = heroctl(
        "job",
        "run",
        "-",
        input=json.dumps(
            {
                "name": "too-big",
                "groups": [
                    {
                        "name": "app",
                        "count": 2,
                        "tasks": [
                            {
                                "name": "web",
                                "image": "x",
                                "resources": {"cpu": 100, "memory": 900_000},
                            }
                        ],
                    }
                ],
            }
        ),
    )
    err = failed(result)
    assert result.stdout.startswith("Job 'too-big' registered: version 0, ")
    assert (
        "job 'too-big' version 0 cannot be fully placed: group 'app': 2 of 2 allocations not placed: "
        in err
    )
    assert "no node has 900000 MB free (" in err
    assert "`heroctl job stop too-big` removes it" in err

    # job status shows the same failure.
    status = ok(heroctl("job", "status", "too-big"))
    assert "Placement failure" in status and "no node has 900000 MB free" in status
    assert rows(status)["Allocations"] == ["Allocations", "none"]

    # --json: the deployment on stdout, the failure on stderr, exit 1.
    spec = json.dumps({"name": "too-big-2", "image": "x", "resources": {"memory": 900_000}})
    result = heroctl("job", "run", "--json", "-", input=spec)
    assert "no node has 900000 MB free" in failed(result)
    assert json.loads(result.stdout)["job"] == "too-big-2"


def test_job_run_follows_until_running(heroctl, server: Server, agents) -> None:
    n = agents("run-node", auto_run=True)
    result = heroctl("job", "run", "-", input=job_spec("run-job", n.name, count=2))
    out = ok(result)
    lines = out.splitlines()
    assert lines[0].startswith("Job 'run-job' registered: version 0, ")
    # A new version starts a deployment: followed until the server calls it successful.
    assert lines[1].startswith("Following deployment ")
    assert lines[-1].endswith("version 0 successful: app: 2/2 placed, 2 healthy, 0 unhealthy.")
    assert lines[-2].split() == ["app", "2", "2", "2", "0"]  # desired placed healthy unhealthy
    allocs = server.get("/v1/allocations?job=run-job").body
    assert {a["status"] for a in allocs} == {"running"}

    # An update: the fake agent runs each replacement, the old ones are stopped.
    result = heroctl("job", "run", "-", input=job_spec("run-job", n.name, count=2, env={"V": "2"}))
    assert (
        ok(result)
        .splitlines()[-1]
        .endswith("version 1 successful: app: 2/2 placed, 2 healthy, 0 unhealthy.")
    )
    live = [
        a for a in server.get("/v1/allocations?job=run-job").body if a["desired_status"] == "run"
    ]
    assert sorted(a["job_version"] for a in live) == [1, 1]

    status = rows(ok(heroctl("job", "status", "run-job")))
    assert status["Status"] == ["Status", "running"]
    assert status["Allocations"] == ["Allocations", "2", "running"]
    assert not n.errors


# --- pure helpers -----------------------------------------------------------------------


def test_placement_progress() -> None:
    submitted = {
        "name": "w",
        "version": 1,
        "type": "service",
        "groups": [{"name": "app", "count": 3}],
    }

    def alloc(
        i: int, status: str, *, version: int = 1, healthy: bool | None = None, desired: str = "run"
    ) -> dict[str, Any]:
        return {
            "id": f"{i:032x}",
            "name": f"w.app[{i}]",
            "group": "app",
            "index": i,
            "status": status,
            "healthy": healthy,
            "job_version": version,
            "desired_status": desired,
        }

    p = Placement.of(
        submitted,
        [
            alloc(0, "running"),
            alloc(1, "pending"),
            alloc(5, "running", version=0),
            alloc(6, "running", desired="stop"),
        ],
        None,
    )
    assert [a["index"] for a in p.allocs] == [0, 1] and p.old_live == 1
    assert not p.done and not p.broken
    assert (
        p.summary() == "1/3 running, 1 pending, 1 not placed yet, 1 of older versions still running"
    )

    p = Placement.of(
        submitted, [alloc(i, "running", healthy=h) for i, h in enumerate((True, None, True))], None
    )
    assert p.done and p.summary() == "3/3 running"
    p = Placement.of(submitted, [alloc(0, "running", healthy=False), alloc(1, "failed")], None)
    assert [a["index"] for a in p.broken] == [0, 1]
    assert p.summary() == "0/3 running, 1 failed, 1 unhealthy, 1 not placed yet"

    batch = Placement.of(
        {**submitted, "type": "batch"}, [alloc(i, "complete") for i in range(3)], None
    )
    assert batch.done

    job = {
        "placement_failures": [
            {"group": "app", "count": 2, "reason": "no node has 2048 MB free (3 nodes evaluated)"}
        ]
    }
    p = Placement.of(submitted, [], job)
    assert failure_text(p.failures, p.want) == (
        "group 'app': 2 of 3 allocations not placed: no node has 2048 MB free (3 nodes evaluated)"
    )
    assert Placement.of({**submitted, "groups": []}, [], None).done  # nothing to place


def test_duration_and_usage_formatters() -> None:
    assert [parse_duration(t) for t in ("90", "500ms", "30s", "5m", "1h30m", "1.5s")] == [
        90,
        0.5,
        30,
        300,
        5400,
        1.5,
    ]
    for bad in ("", "5x", "m5", "5 m", "-1s", "1s5"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert [fmt_seconds(s) for s in (None, 0.4, 45, 300, 5400, 90061)] == [
        "-",
        "0s",
        "45s",
        "5m",
        "1h30m",
        "1d1h1m1s",
    ]
    assert used_of(1200, 4000, "MHz") == "1200/4000 MHz (30%)"
    assert used_of(None, 4000) == "-/4000"
    assert used_of(None, None) == "-"


def test_blocking_query_helpers() -> None:
    assert [format_wait(w) for w in (30, 0.5, 1.25, 300, 0)] == [
        "30s",
        "500ms",
        "1250ms",
        "300s",
        "1ms",
    ]
    assert response_index({"X-HeroCtl-Index": "42"}) == 42
    assert response_index({}) == 0 and response_index({"X-HeroCtl-Index": "x"}) == 0
