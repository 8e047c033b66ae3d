"""`heroctl job run` follows the deployment its submit started, against a real
heroctld whose node acts on its allocations (health chosen by the image,
tests/api/test_deployments.HealthNode): a healthy version ends successful
(exit 0, the last table all healthy), an unhealthy one with auto_revert fails
and says where it was rolled back to (exit 1), --timeout gives up (exit 1),
--detach returns at once, and a submit that changes nothing follows the
placement as before. Pure helpers are checked on documents shaped like the
server's."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.deployment_follow import (
    Followed,
    LiveView,
    group_rows,
    groups_line,
    outcome,
    status_line,
    unplaced_reason,
)
from cli.main import cli
from tests.api.test_deployments import BAD, SLOW, HealthNode, latest, spec
from tests.support.cluster import Server


@pytest.fixture(scope="module")
def node(server: Server) -> Iterator[HealthNode]:
    n = HealthNode(server, "cli-run-node").start()
    try:
        yield n
    finally:
        n.stop()
        assert not n.errors, n.errors[:5]


@pytest.fixture
def run_job(server: Server, node: HealthNode, tmp_path: Path):  # type: ignore[no-untyped-def]
    """`heroctl [--json] job run FILE [args]` with `doc` written to FILE."""
    runner = CliRunner(
        env={"HEROCTL_ADDR": None, "HEROCTL_TOKEN": None, "XDG_CONFIG_HOME": str(tmp_path)}
    )

    def run(doc: dict[str, Any], *args: str, as_json: bool = False) -> Result:
        path = tmp_path / f"{doc['name']}.json"
        path.write_text(json.dumps(doc))
        token = ["--token", server.token] if server.token else []
        head = ["--address", server.url, *token, *(["--json"] if as_json else [])]
        return runner.invoke(cli, [*head, "job", "run", str(path), *args])

    return run


def last_group_row(output: str, group: str = "app") -> list[str]:
    rows = [line.split() for line in output.splitlines() if line.split()[:1] == [group]]
    assert rows, output
    return rows[-1]


def test_a_healthy_version_is_followed_to_success(run_job: Any) -> None:
    first = run_job(spec("rungood"))
    assert first.exit_code == 0, first.output
    assert "Following deployment" in first.stdout
    assert "successful" in first.stdout
    assert last_group_row(first.stdout) == ["app", "2", "2", "2", "0"]  # desired placed healthy
    update = run_job(spec("rungood", image="busybox:2"))
    assert update.exit_code == 0, update.output
    assert "version 1" in update.stdout and "successful" in update.stdout
    assert last_group_row(update.stdout) == ["app", "2", "2", "2", "0"]


def test_json_prints_the_final_deployment(server: Server, run_job: Any) -> None:
    result = run_job(spec("runjson"), as_json=True)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["job"] == "runjson" and doc["version"] == 0 and doc["status"] == "successful"
    assert doc["groups"]["app"]["healthy"] == 2
    assert doc["id"] == latest(server, "runjson")["id"]


def test_an_unhealthy_version_fails_and_says_where_it_rolled_back(
    server: Server, run_job: Any
) -> None:
    good = run_job(spec("runbad", auto_revert=True))
    assert good.exit_code == 0, good.output
    bad = run_job(spec("runbad", image=BAD, auto_revert=True))
    assert bad.exit_code == 1, bad.output
    assert "failed" in bad.output
    assert "rolled back to version 0 (as version 2)" in bad.output, bad.output
    assert server.get("/v1/jobs/runbad").body["version"] == 2


def test_without_auto_revert_a_failure_says_it_was_not_rolled_back(run_job: Any) -> None:
    bad = run_job(spec("runhalt", image=BAD, count=1))
    assert bad.exit_code == 1, bad.output
    assert "It was not rolled back" in bad.output and "halted" in bad.output


def test_timeout_gives_up_with_exit_1(server: Server, run_job: Any) -> None:
    started = time.monotonic()
    slow = run_job(spec("runslow", image=SLOW, count=1), "--timeout", "1s")
    assert slow.exit_code == 1, slow.output
    assert "is still running after 1s" in slow.output
    assert f"heroctl deployment status {latest(server, 'runslow')['id']}" in slow.output
    assert time.monotonic() - started < 15


def test_detach_returns_at_once(server: Server, run_job: Any) -> None:
    result = run_job(spec("rundetach", image=SLOW, count=1), "--detach")
    assert result.exit_code == 0, result.output
    assert "registered: version 0" in result.stdout
    assert "Following" not in result.stdout
    assert latest(server, "rundetach")["status"] == "running"  # nobody waited for it


def test_an_unchanged_submit_follows_the_placement(run_job: Any) -> None:
    first = run_job(spec("runtwice"))
    assert first.exit_code == 0 and "Following deployment" in first.stdout, first.output
    again = run_job(spec("runtwice"))
    assert again.exit_code == 0, again.output
    assert "updated: version 1" in again.stdout
    assert "Following the placement" in again.stdout
    assert "Following deployment" not in again.stdout
    assert "2/2 running" in again.stdout


DOC = {
    "id": "abcd1234abcd1234",
    "job": "web",
    "version": 3,
    "status": "running",
    "status_description": "deployment is running",
    "require_progress_by": 1_700_000_090_000,
    "groups": {"app": {"desired": 3, "placed": 2, "healthy": 1, "unhealthy": 0}},
}


def test_pure_helpers_show_groups_status_and_deadline() -> None:
    assert group_rows(DOC) == (
        ["GROUP", "DESIRED", "PLACED", "HEALTHY", "UNHEALTHY"],
        [("app", 3, 2, 1, 0)],
    )
    assert groups_line(DOC) == "app: 2/3 placed, 1 healthy, 0 unhealthy"
    assert status_line(DOC, 1_700_000_000_000) == (
        "running (deployment is running), progress deadline in 1m30s"
    )
    with_canaries = dict(DOC, groups={"app": dict(DOC["groups"]["app"], canaries=["a1"])})
    assert group_rows(with_canaries)[0][-1] == "CANARIES"
    assert group_rows(with_canaries)[1] == [("app", 3, 2, 1, 0, 1)]
    assert groups_line(with_canaries).endswith(", 1 canaries")


def test_outcomes() -> None:
    promote = dict(DOC, status="blocked-on-promotion", status_description="canaries healthy")
    code, text = outcome(Followed(promote), 60)
    assert code == 0 and "heroctl deployment promote abcd1234abcd1234" in text
    assert outcome(Followed(dict(DOC, status="successful")), 60)[0] == 0
    assert outcome(Followed(dict(DOC, status="cancelled")), 60)[0] == 1
    code, text = outcome(Followed(DOC, timed_out=True), 60)
    assert code == 1 and "still running after 1m" in text
    reverted = dict(DOC, status="failed", reverted_to=2, revert_version=4)
    assert "rolled back to version 2 (as version 4)" in outcome(Followed(reverted), 60)[1]


def test_only_the_followed_versions_placement_failures_count() -> None:
    failure = {"group": "app", "count": 2, "reason": "no node has 900 MB free"}
    job = {
        "version": 1,
        "groups": [{"name": "app", "count": 2}],
        "placement_failures": [failure],
        "deployment": {"job_version": 1},
    }
    assert unplaced_reason(job, 1) == (
        "group 'app': 2 of 2 allocations not placed: no node has 900 MB free"
    )
    assert unplaced_reason(dict(job, deployment={"job_version": 0}), 1) is None  # not seen yet
    assert unplaced_reason(dict(job, version=2), 1) is None  # superseded
    assert unplaced_reason(dict(job, placement_failures=[]), 1) is None


def test_the_live_view_draws_the_groups(capsys: pytest.CaptureFixture[str]) -> None:
    view = LiveView()
    try:
        view.update(DOC, 3.0)
        view.update(dict(DOC, status="successful"), 4.0)
    finally:
        view.close()
    drawn = capsys.readouterr().out
    assert "Deployment abcd1234abcd1234 of job 'web' version 3: successful" in drawn
    assert "UNHEALTHY" in drawn
