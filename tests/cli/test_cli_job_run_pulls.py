"""`heroctl job run` shows the image pulls of the version it follows: a real
heroctld whose node (a test's, acting through the agent's routes) says it
pulls each new allocation's image for a while before it runs it. Both
follows print the pull: a service job's deployment and a batch job's
placement. Pure helpers on documents shaped like the server's."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from cli.placement import status_cell
from cli.pull_progress import PullLines
from tests.support.acting_node import ActingNode
from tests.support.cluster import Server

IMAGE = "registry.example.com/shop/web:1.4"
PULL_SECONDS = 1.5


class PullingNode(ActingNode):
    """Says `pulling image ...` for each new allocation, holds it pending for
    PULL_SECONDS, then says `pulled ...` and runs it, healthy."""

    def __init__(self, server: Server, name: str) -> None:
        super().__init__(server, name)
        self.since: dict[str, float] = {}
        self.lock = threading.Lock()

    def _update_for(self, alloc: dict[str, Any]) -> dict[str, Any] | None:  # type: ignore[override]
        if alloc["desired_status"] != "run" or alloc["status"] != "pending":
            return ActingNode._update_for(alloc)
        now = time.time()
        image = alloc["group_spec"]["tasks"][0]["image"]
        with self.lock:
            began = self.since.setdefault(alloc["id"], now)
        ts = int(now * 1000)
        if began == now:
            event = {
                "ts": ts,
                "type": "pulling",
                "message": f"pulling image {image}",
                "task": "web",
            }
            return {"id": alloc["id"], "status": "pending", "events": [event]}
        if now - began < PULL_SECONDS:
            return None
        update = ActingNode._update_for(alloc)
        assert update is not None
        pulled = {"ts": ts, "type": "pulled", "message": f"pulled image {image} (48.2 MB) in 1.5 s"}
        update["events"] = [dict(pulled, task="web"), *update["events"]]
        return update


@pytest.fixture(scope="module")
def node(server: Server) -> Iterator[PullingNode]:
    n = PullingNode(server, "pulling-node").start()
    try:
        yield n  # type: ignore[misc]
    finally:
        n.stop()
        assert not n.errors, n.errors[:5]


def run_job(server: Server, tmp_path: Path, doc: dict[str, Any]) -> Result:
    runner = CliRunner(
        env={"HEROCTL_ADDR": None, "HEROCTL_TOKEN": None, "XDG_CONFIG_HOME": str(tmp_path)}
    )
    path = tmp_path / f"{doc['name']}.json"
    path.write_text(json.dumps(doc))
    token = ["--token", server.token] if server.token else []
    return runner.invoke(cli, ["--address", server.url, *token, "job", "run", str(path)])


def job(name: str, job_type: str = "service") -> dict[str, Any]:
    task = {"name": "web", "image": IMAGE, "resources": {"cpu": 50, "memory": 16}}
    return {"name": name, "type": job_type, "groups": [{"name": "app", "tasks": [task]}]}


def pull_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if f"pulling image {IMAGE}" in line]


def test_a_deployments_follow_shows_the_pull(
    server: Server, node: PullingNode, tmp_path: Path
) -> None:
    result = run_job(server, tmp_path, job("pullsvc"))
    assert result.exit_code == 0, result.output
    assert "Following deployment" in result.stdout and "successful" in result.stdout
    (line,) = pull_lines(result.stdout)
    alloc = server.get("/v1/allocations?job=pullsvc").body[0]
    assert alloc["id"][:8] in line and "pulling-node" in line
    assert alloc["last_event"]["type"] == "started"  # the listing's newest event


def test_a_placements_follow_shows_the_pull(
    server: Server, node: PullingNode, tmp_path: Path
) -> None:
    result = run_job(server, tmp_path, job("pullbatch", "batch"))
    assert result.exit_code == 0, result.output
    assert "Following the placement" in result.stdout
    (line,) = pull_lines(result.stdout)
    assert "pullbatch.app[0]" in line


def test_each_pull_event_is_shown_once_and_only_this_versions() -> None:
    pulls = PullLines(version=2)
    ev = {"ts": 5, "type": "pulling", "message": "pulling image x"}
    mine = {"id": "a" * 12, "name": "w.app[0]", "node_name": "n1", "job_version": 2}
    older = dict(mine, id="b" * 12, job_version=1, last_event=ev)
    assert pulls.lines([dict(mine, last_event=ev), older], 1.0) == [
        "   1.0s  aaaaaaaa  w.app[0]  n1  pulling image x"
    ]
    assert pulls.lines([dict(mine, last_event=ev)], 2.0) == []  # said already
    later = dict(ev, ts=35, message="pulling image x: 45.0 of 120.0 MB")
    assert pulls.lines([dict(mine, last_event=later)], 31.0)[0].endswith("45.0 of 120.0 MB")
    started = {"ts": 40, "type": "started", "message": "task started"}
    assert pulls.lines([dict(mine, last_event=started), dict(mine, last_event=None)], 9) == []


def test_the_live_tables_status_says_it_pulls() -> None:
    ev = {"ts": 5, "type": "pulling", "message": "pulling image x"}
    assert status_cell({"status": "pending", "last_event": ev}) == "pending: pulling image x"
    assert status_cell({"status": "running", "last_event": ev}) == "running"
    assert status_cell({"status": "pending"}) == "pending"
