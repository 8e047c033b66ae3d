"""Deployments in the replicated state: started with the versions that change
allocations, cancelled by newer ones, paused, resumed, failed (rolling back to
the last stable version with auto_revert), successful (marking the version
stable), and reverts by hand."""

from __future__ import annotations

from typing import Any

import pytest

from domain.jobspec import update_settings
from raft.deployment_docs import group_settings
from tests.raft.event_log import WEB, Log, cmd


def _web(count: int = 2, image: str = "v0", **update: Any) -> dict[str, Any]:
    group = {"name": "web", "count": count, "tasks": [{"name": "web", "image": image}]}
    if update:
        group["update"] = update
    return {**WEB, "groups": [group]}


def _deployments(log: Log) -> list[dict[str, Any]]:
    return log.state.deployments_of("web")


def _status(log: Log, status: str, ts: int = 2000, **extra: Any) -> dict[str, Any]:
    (result,) = log.apply(
        cmd("deployment.status", ts=ts, id=_deployments(log)[-1]["id"], status=status, **extra)
    )
    return result


def test_a_version_that_changes_groups_starts_one_and_cancels_the_running_one() -> None:
    log = Log()
    (first,) = log.apply(cmd("job.upsert", job=_web()))
    (dep,) = _deployments(log)
    assert first["deployment"] == dep["id"]
    assert dep["status"] == "running" and dep["version"] == 0 and dep["strategy"] == "rolling"
    assert dep["groups"]["web"] == {
        "desired": 2,
        "placed": 0,
        "healthy": 0,
        "unhealthy": 0,
        "auto_revert": False,
        "progress_deadline": 600,
    }
    assert dep["require_progress_by"] == 1000 + 600_000
    log.apply(cmd("job.upsert", job=_web(image="v1")))
    old, new = _deployments(log)
    assert old["status"] == "cancelled" and "superseded by version 1" in old["status_description"]
    assert new["status"] == "running" and new["version"] == 1
    # the same groups again (a job-level change only): no deployment
    (same,) = log.apply(cmd("job.upsert", job={**_web(image="v1"), "meta": {"a": "b"}}))
    assert same["deployment"] is None and len(_deployments(log)) == 2


def test_success_marks_the_version_stable_without_a_new_submit() -> None:
    log = Log()
    log.apply(cmd("job.upsert", job=_web()))
    assert log.state.table("jobs")["web"]["stable"] is False
    assert _status(log, "successful")["ok"]
    job = log.state.table("jobs")["web"]
    assert job["stable"] is True and job["version"] == 0
    assert "job.submitted" not in [t for t in log.types()[1:]]
    refused = _status(log, "paused")
    assert refused["status"] == 409 and "successful: cannot pause" in refused["message"]


def test_pause_resume_fail_and_their_refusals() -> None:
    log = Log()
    log.apply(cmd("job.upsert", job=_web()))
    assert _status(log, "running")["status"] == 409  # not paused
    assert _status(log, "paused")["deployment"]["status"] == "paused"
    resumed = _status(log, "running", ts=5000)["deployment"]
    assert resumed["status"] == "running" and resumed["require_progress_by"] == 5000 + 600_000
    failed = _status(log, "failed", description="failed by a user")["deployment"]
    assert failed["status"] == "failed" and "the deployment halted" in failed["status_description"]
    assert _status(log, "failed")["status"] == 409
    assert _status(log, "sideways")["status"] == 400
    (missing,) = log.apply(cmd("deployment.status", id="nope", status="failed"))
    assert missing["status"] == 404
    events = [e["data"] for e in log.events() if e["type"] == "job.failed"]
    assert events == [
        {
            "job": "web",
            "version": 0,
            "reason": failed["status_description"],
            "deployment": failed["id"],
        }
    ]


def test_progress_pushes_the_deadline_back_only_when_health_moves_up() -> None:
    log = Log()
    log.apply(cmd("job.upsert", job=_web()))
    dep_id = _deployments(log)[0]["id"]
    counts = {"web": {"placed": 2, "healthy": 0, "unhealthy": 0}}
    (r,) = log.apply(cmd("deployment.progress", ts=3000, id=dep_id, groups=counts))
    assert r["deployment"]["groups"]["web"]["placed"] == 2
    assert r["deployment"]["require_progress_by"] == 1000 + 600_000
    counts = {"web": {"placed": 2, "healthy": 1, "unhealthy": 0}}
    (r,) = log.apply(cmd("deployment.progress", ts=4000, id=dep_id, groups=counts))
    assert r["deployment"]["require_progress_by"] == 4000 + 600_000


def test_auto_revert_resubmits_the_last_stable_version() -> None:
    log = Log()
    log.apply(cmd("job.upsert", job=_web(auto_revert=True)))
    _status(log, "successful")
    log.apply(cmd("job.upsert", job=_web(image="bad", auto_revert=True)))
    result = _status(log, "failed", description="allocation a9 is unhealthy")
    failed = result["deployment"]
    assert failed["reverted_to"] == 0 and failed["revert_version"] == 2
    job = log.state.table("jobs")["web"]
    assert job["version"] == 2 and job["groups"][0]["tasks"][0]["image"] == "v0"
    assert job["stable"] is False and result["job"]["version"] == 2
    assert _deployments(log)[-1]["version"] == 2 and _deployments(log)[-1]["status"] == "running"
    (event,) = [e["data"] for e in log.events() if e["type"] == "job.failed"]
    assert event == {
        "job": "web",
        "version": 1,
        "reason": failed["status_description"],
        "deployment": failed["id"],
        "reverted_to": 0,
        "revert_version": 2,
    }
    assert "rolling back to version 0" in event["reason"]


def test_auto_revert_without_a_stable_version_halts() -> None:
    log = Log()
    log.apply(cmd("job.upsert", job=_web(auto_revert=True)))
    failed = _status(log, "failed")["deployment"]
    assert "no stable version" in failed["status_description"] and "reverted_to" not in failed
    assert log.state.table("jobs")["web"]["version"] == 0


def test_revert_by_hand() -> None:
    log = Log()
    log.apply(cmd("job.upsert", job=_web()))
    log.apply(cmd("job.upsert", job=_web(image="v1")))
    (r,) = log.apply(cmd("job.revert", name="web", version=0))
    assert r["ok"] and r["reverted_to"] == 0 and r["job"]["version"] == 2
    assert log.state.table("jobs")["web"]["groups"][0]["tasks"][0]["image"] == "v0"
    before = log.state.table("jobs")["web"]
    for version, status in ((7, 409), ("1", 400), (True, 400)):
        (refused,) = log.apply(cmd("job.revert", name="web", version=version))
        assert refused["status"] == status
    (missing,) = log.apply(cmd("job.revert", name="nope", version=0))
    assert missing["status"] == 404
    assert log.state.table("jobs")["web"] is before


def test_deleting_a_job_forgets_its_deployments() -> None:
    log = Log()
    log.apply(cmd("job.upsert", job=_web()))
    log.apply(cmd("job.delete", name="web"))
    assert _deployments(log) == [] and log.state.table("deployments") == {}


@pytest.mark.parametrize(
    "update",
    [{}, {"healthy_deadline": 900}, {"progress_deadline": 120, "healthy_deadline": 60}],
)
def test_the_fsm_reads_progress_deadlines_as_the_job_spec_does(update: dict[str, Any]) -> None:
    group = {"update": {"max_parallel": 1, "min_healthy_time": 10, **update}}
    group["update"].setdefault("healthy_deadline", 300)
    assert group_settings(group)[0] == update_settings(group)["progress_deadline"]


def test_a_snapshot_keeps_the_index_by_job() -> None:
    from raft.state import State

    log = Log()
    log.apply(cmd("job.upsert", job=_web()))
    loaded = State.from_bytes(log.state.to_bytes())
    assert loaded.deployments_of("web") == _deployments(log)
    assert loaded.active_deployments == log.state.active_deployments == {_deployments(log)[0]["id"]}


def test_the_active_index_follows_the_status() -> None:
    log = Log()
    log.apply(cmd("job.upsert", job=_web()))
    first = _deployments(log)[0]["id"]
    assert log.state.active_deployments == {first}
    _status(log, "paused")
    assert log.state.active_deployments == {first}
    log.apply(cmd("job.upsert", job=_web(image="v1")))
    second = _deployments(log)[-1]["id"]
    assert log.state.active_deployments == {second}  # the first was cancelled
    _status(log, "successful")
    assert log.state.active_deployments == set()
    log.apply(cmd("job.upsert", job=_web(image="v2")))
    log.apply(cmd("job.delete", name="web"))
    assert log.state.active_deployments == set()
