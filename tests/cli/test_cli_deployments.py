"""`heroctl deployment list|status|promote|fail|pause|resume` and `heroctl job revert`
against a real heroctld whose node acts on its allocations (health chosen by
the image, tests/api/test_deployments.HealthNode)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.test_deployments import SLOW, HealthNode, latest, spec, submit
from tests.api.test_deployments_canary import blocked, versions
from tests.support.cluster import Server, wait_until


@pytest.fixture(scope="module")
def node(server: Server) -> Iterator[HealthNode]:
    n = HealthNode(server, "cli-deploy-node").start()
    try:
        yield n
    finally:
        n.stop()
        assert not n.errors, n.errors[:5]


def test_list_and_status(server: Server, node: HealthNode, heroctl: Any) -> None:
    submit(server, spec("clilist"))
    dep = latest(server, "clilist", "successful")
    listed = heroctl("deployment", "list", "--job", "clilist")
    assert listed.exit_code == 0, listed.output
    assert dep["id"] in listed.output and "successful" in listed.output and "2/2" in listed.output
    shown = heroctl("deployment", "status", dep["id"])
    assert shown.exit_code == 0, shown.output
    for text in ("rolling", "successful", "clilist", "DESIRED", "app"):
        assert text in shown.output
    as_json = heroctl("--json", "deployment", "status", dep["id"])
    assert json.loads(as_json.output)["id"] == dep["id"]
    missing = heroctl("deployment", "status", "0000000000000000")
    assert missing.exit_code != 0 and "does not exist" in missing.output


def test_pause_resume_fail(server: Server, node: HealthNode, heroctl: Any) -> None:
    submit(server, spec("clisteer", image=SLOW, count=1))
    dep = latest(server, "clisteer", "running")
    paused = heroctl("deployment", "pause", dep["id"])
    assert paused.exit_code == 0 and "is paused" in paused.output, paused.output
    again = heroctl("deployment", "pause", dep["id"])
    assert again.exit_code != 0 and "cannot pause" in again.output
    resumed = heroctl("deployment", "resume", dep["id"])
    assert resumed.exit_code == 0 and "is running" in resumed.output, resumed.output
    failed = heroctl("deployment", "fail", dep["id"])
    assert failed.exit_code == 0 and "is failed" in failed.output, failed.output
    assert server.get(f"/v1/deployments/{dep['id']}").body["status"] == "failed"


def test_job_revert(server: Server, node: HealthNode, heroctl: Any) -> None:
    submit(server, spec("clirev"))
    latest(server, "clirev", "successful")
    submit(server, spec("clirev", image="busybox:2"))
    wait_until(lambda: latest(server, "clirev", "successful")["version"] == 1, timeout=30)
    missing = heroctl("job", "revert", "clirev", "9")
    assert missing.exit_code != 0 and "has no version 9" in missing.output
    bad = heroctl("job", "revert", "clirev", "x")
    assert bad.exit_code != 0
    assert server.get("/v1/jobs/clirev").body["version"] == 1
    done = heroctl("job", "revert", "clirev", "0")
    assert done.exit_code == 0 and "new version 2" in done.output, done.output
    job = server.get("/v1/jobs/clirev").body
    assert job["version"] == 2 and job["groups"][0]["tasks"][0]["image"] == "busybox:1"
    latest(server, "clirev", "successful")
    wait_until(lambda: server.get("/v1/jobs/clirev").body["stable"], timeout=30)
    history = heroctl("job", "status", "clirev", "--versions")
    assert history.exit_code == 0 and "STABLE" in history.output, history.output
    rows = {
        line.split()[0]: line.split() for line in history.output.splitlines()[1:] if line.strip()
    }
    assert rows["2"][2] == "yes" and rows["1"][2] == "yes" and rows["0"][2] == "yes"


def test_promote(server: Server, node: HealthNode, heroctl: Any) -> None:
    submit(server, spec("clican", count=2, strategy="canary"))
    done = latest(server, "clican", "successful")
    refused = heroctl("deployment", "promote", done["id"])
    assert refused.exit_code != 0 and "blocked-on-promotion" in refused.output, refused.output
    submit(server, spec("clican", image="busybox:2", count=2, strategy="canary"))
    waiting = blocked(server, "clican", 1)
    shown = heroctl("deployment", "status", waiting["id"])
    assert shown.exit_code == 0, shown.output
    for text in ("canary", "blocked-on-promotion", "CANARIES", "1/1", "deployment promote"):
        assert text in shown.output
    promoted = heroctl("deployment", "promote", waiting["id"])
    assert promoted.exit_code == 0 and "is running" in promoted.output, promoted.output
    latest(server, "clican", "successful")
    wait_until(lambda: versions(server, "clican") == [1, 1], timeout=30, message="v1 everywhere")
