"""`heroctl job plan`, `heroctl job scale` and `heroctl alloc restart` against a
real heroctld, with a node that acts on its allocations
(tests/support/acting_node.py); and the plan's text on its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.plan_output import counts_text, diff_lines, dry_run_lines
from tests.support.acting_node import ActingNode
from tests.support.cluster import Server, wait_until
from tests.support.nodes import hand_node


@pytest.fixture(scope="module")
def node(server: Server) -> Iterator[ActingNode]:
    n = ActingNode(server, "cli-ops-node").start()
    try:
        yield n
    finally:
        n.stop()
        assert not n.errors, n.errors[:5]


def spec(name: str, count: int = 2, image: str = "busybox:1", memory: int = 64) -> str:
    return f"""\
name: {name}
groups:
  - name: app
    count: {count}
    update:
      max_parallel: 1
    tasks:
      - name: web
        image: {image}
        env:
          MODE: fast
        resources:
          cpu: 100
          memory: {memory}
      - name: side
        image: busybox:1
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return str(path)


def commit_index(server: Server) -> int:
    return int(server.get("/v1/cluster/status").body["commit_index"])


def running(server: Server, job: str, n: int) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        allocs = server.get(f"/v1/allocations?job={job}").body
        live = [a for a in allocs if a["desired_status"] == "run"]
        settled = all(a["status"] != "running" for a in allocs if a["desired_status"] == "stop")
        ok = len(live) == n and all(a["status"] == "running" for a in live) and settled
        # and the deployment of its version decided (the controller writes no more)
        deploying = any(
            d["status"] == "running" for d in server.get(f"/v1/deployments?job={job}").body
        )
        return live if ok and not deploying else None

    return wait_until(ready, 20, 0.1, f"{n} running allocations of {job}")


# --- job plan ------------------------------------------------------------------------------


def test_plan_a_new_job_then_the_same_then_an_image_change(
    heroctl, server: Server, node: ActingNode, tmp_path: Path
) -> None:
    path = write(tmp_path, spec("cli-plan", 3))
    before = commit_index(server)
    r = heroctl("job", "plan", path)
    assert r.exit_code == 1, r.output  # it would create allocations
    out = r.stdout
    assert '+ Job: "cli-plan"' in out
    assert '+ Task Group: "app" (3 create)' in out
    assert '    + Task: "web"' in out and '      + image: "busybox:1"' in out
    assert "- All allocations can be placed." in out
    assert f"heroctl job run --check-index 0 {path}" in out
    assert commit_index(server) == before
    assert server.get("/v1/jobs/cli-plan").status == 404

    assert heroctl("job", "run", path).exit_code == 0
    running(server, "cli-plan", 3)
    r = heroctl("job", "plan", path)
    assert r.exit_code == 0, r.output  # the current version: nothing changes
    assert '  Job: "cli-plan"' in r.stdout and '  Task Group: "app" (3 ignore)' in r.stdout
    assert "would create or destroy no allocation" in r.stdout

    version = server.get("/v1/jobs/cli-plan").body["version"]
    before = commit_index(server)
    changed = write(tmp_path, spec("cli-plan", 3, image="busybox:2"))
    r = heroctl("job", "plan", changed)
    assert r.exit_code == 1, r.output
    lines = r.stdout.splitlines()
    assert '~ Job: "cli-plan"' in lines
    group = '~ Task Group: "app" (3 create/destroy update, 2 of them later, update.max_parallel'
    assert any(line.startswith(group) for line in lines), r.stdout
    assert '    ~ Task: "web" (forces create/destroy update)' in lines
    assert '      ~ image: "busybox:1" => "busybox:2"' in lines
    assert not any("side" in line for line in lines)  # unchanged tasks are not shown
    assert (commit_index(server), server.get("/v1/jobs/cli-plan").body["version"]) == (
        before,
        version,
    )
    index = server.get("/v1/jobs/cli-plan").body["job_modify_index"]
    assert f"Job Modify Index: {index}" in lines


def test_plan_json_failures_and_errors(
    heroctl, server: Server, node: ActingNode, tmp_path: Path
) -> None:
    r = heroctl("job", "plan", "--json", "-", input=spec("cli-plan-huge", 1, memory=64_000))
    assert r.exit_code == 1, r.output
    plan = json.loads(r.stdout)
    assert plan["groups"]["app"]["unplaced"] == 1 and plan["changes"] is True
    r = heroctl("job", "plan", "-", input=spec("cli-plan-huge", 1, memory=64_000))
    assert "- WARNING: some allocations cannot be placed." in r.stdout
    assert "group 'app': 1 allocation not placed: no node has" in r.stdout
    # A spec the server refuses, one with no name, a file that is not a job: 255.
    bad = heroctl("job", "plan", "-", input=spec("cli-plan-bad", -1))
    assert bad.exit_code == 255 and "groups[0].count" in bad.stderr, bad.output
    nameless = heroctl("job", "plan", "-", input="image: busybox\n")
    assert nameless.exit_code == 255 and "has no name" in nameless.stderr
    assert heroctl("job", "plan", "-", input="[1, 2]").exit_code == 255


# --- job scale ------------------------------------------------------------------------------


def test_scale_up_and_down_and_follow(heroctl, server: Server, node: ActingNode) -> None:
    assert heroctl("job", "run", "-", input=spec("cli-scale", 1)).exit_code == 0
    running(server, "cli-scale", 1)
    r = heroctl("job", "scale", "cli-scale", "app", "3")
    assert r.exit_code == 0, r.output
    assert "Job 'cli-scale' group 'app' scaled from 1 to 3: version 1" in r.stdout
    # followed: the deployment the new version started
    assert "version 1 successful: app: 3/3 placed, 3 healthy" in r.stdout
    assert len(running(server, "cli-scale", 3)) == 3
    r = heroctl("job", "scale", "cli-scale", "1", "--detach")  # the only group, implied
    assert r.exit_code == 0, r.output
    assert "scaled from 3 to 1: version 2" in r.stdout
    running(server, "cli-scale", 1)
    r = heroctl("job", "scale", "cli-scale", "2", "--json", "--detach")
    answer = json.loads(r.stdout)
    assert answer["count"] == 2
    deployment = server.get(f"/v1/deployments/{answer['deployment_id']}").body
    assert deployment["version"] == answer["version"] == 3


def test_scale_errors(heroctl, server: Server, node: ActingNode) -> None:
    assert heroctl("job", "run", "--detach", "-", input=spec("cli-scale-bad", 1)).exit_code == 0
    cases = {
        ("cli-scale-bad", "db", "2"): "group: job 'cli-scale-bad' has no group 'db'",
        ("nope", "2"): "job 'nope' does not exist",
        ("cli-scale-bad", "app", "100001"): "count: must be an integer from 0 to 100000",
    }
    for args, words in cases.items():
        r = heroctl("job", "scale", *args)
        assert r.exit_code == 1 and r.stderr.startswith("Error: ") and words in r.stderr, r.output
    assert heroctl("job", "scale", "cli-scale-bad", "many").exit_code == 2  # usage
    assert heroctl("job", "scale", "cli-scale-bad", "-1").exit_code == 2
    assert heroctl("job", "scale", "cli-scale-bad", "a", "b", "3").exit_code == 2
    stale = heroctl("job", "scale", "cli-scale-bad", "3", "--check-index", "1")
    assert stale.exit_code == 1 and "job_modify_index" in stale.stderr
    assert server.get("/v1/jobs/cli-scale-bad").body["version"] == 0


# --- alloc restart --------------------------------------------------------------------------


def test_alloc_restart_waits_for_the_node(heroctl, server: Server, node: ActingNode) -> None:
    assert heroctl("job", "run", "-", input=spec("cli-restart", 1)).exit_code == 0
    (alloc,) = running(server, "cli-restart", 1)
    r = heroctl("alloc", "restart", alloc["id"][:8])
    assert r.exit_code == 0, r.output
    assert "its tasks restarted in place (2 restarts in all)" in r.stdout
    r = heroctl("alloc", "restart", alloc["id"], "--task", "side")
    assert r.exit_code == 0 and "task 'side' restarted in place (3 restarts in all)" in r.stdout
    r = heroctl("alloc", "restart", alloc["id"], "--detach", "--json")
    assert json.loads(r.stdout)["restart_requested"]["task"] is None
    r = heroctl("alloc", "status", alloc["id"])
    assert "restart_requested" in r.stdout and "restart requested by a user" in r.stdout


def test_alloc_restart_errors(heroctl, server: Server, node: ActingNode) -> None:
    assert heroctl("job", "run", "-", input=spec("cli-restart-bad", 1)).exit_code == 0
    (alloc,) = running(server, "cli-restart-bad", 1)
    r = heroctl("alloc", "restart", alloc["id"], "--task", "db")
    assert r.exit_code == 1 and "task: allocation" in r.stderr and "has no task 'db'" in r.stderr
    r = heroctl("alloc", "restart", "ffffffffffff")
    assert r.exit_code == 1 and "allocation 'ffffffffffff' does not exist" in r.stderr
    assert heroctl("alloc", "stop", alloc["id"]).exit_code == 0
    r = heroctl("alloc", "restart", alloc["id"])
    assert r.exit_code == 1 and "only a running allocation can be restarted" in r.stderr


def test_alloc_restart_gives_up_when_the_node_does_not_act(
    heroctl, server: Server, node: ActingNode
) -> None:
    silent = hand_node(
        server, address="127.0.0.1", resources={"cpu": 4000, "memory": 4096}, drivers=["docker"]
    )
    job = spec("cli-restart-silent", 1) + (
        f"    constraints:\n      - attribute: node.name\n        value: {silent.name}\n"
    )
    assert heroctl("job", "run", "--detach", "-", input=job).exit_code == 0
    alloc = wait_until(
        lambda: server.get("/v1/allocations?job=cli-restart-silent").body, 15, 0.1, "placed"
    )[0]
    update = {"id": alloc["id"], "status": "running", "healthy": True}
    assert silent.report([update]).status == 200
    r = heroctl("alloc", "restart", alloc["id"], "--timeout", "1s")
    assert r.exit_code == 1, r.output
    assert "its node has not restarted it after 1s; the request stays" in r.stderr
    assert server.get(f"/v1/allocations/{alloc['id']}").body["restart_requested"]["index"] > 0


# --- the plan's text ------------------------------------------------------------------------


def test_the_plan_text_on_its_own() -> None:
    plan = {
        "job": "web",
        "diff": {
            "type": "edited",
            "fields": [{"name": "meta.owner", "type": "deleted", "old": "ops", "new": None}],
            "groups": [
                {
                    "name": "app",
                    "type": "edited",
                    "fields": [{"name": "count", "type": "edited", "old": 2, "new": 4}],
                    "tasks": [
                        {
                            "name": "web",
                            "type": "added",
                            "fields": [
                                {"name": "command", "type": "added", "old": None, "new": ["a"]}
                            ],
                        }
                    ],
                },
                {"name": "db", "type": "none", "fields": [], "tasks": []},
            ],
        },
        "groups": {"app": {"place": 2, "in_place_update": 2}, "db": {"ignore": 1}},
        "failures": [],
        "halted": {"app": "replacement x is unhealthy"},
        "changes": True,
    }
    assert diff_lines(plan) == [
        '~ Job: "web"',
        '  - meta.owner: "ops"',
        '~ Task Group: "app" (2 create, 2 in-place update)',
        "    ~ count: 2 => 4",
        '    + Task: "web"',
        '      + command: ["a"]',
        '  Task Group: "db" (1 ignore)',
    ]
    assert dry_run_lines(plan) == [
        "Scheduler dry-run:",
        "- All allocations can be placed.",
        "- The rolling update of group 'app' is halted: replacement x is unhealthy",
    ]
    assert counts_text({}) == ""
