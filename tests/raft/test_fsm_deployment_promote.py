"""Canary and blue-green deployments in the replicated state: the settings the
controller takes from the job, blocked-on-promotion, a promote (which tells
the scheduler through the job's ``promoted_version``), its refusals, a failed
canary's revert, and a blocked deployment cancelled by a newer version."""

from __future__ import annotations

from typing import Any

from tests.raft.event_log import Log, cmd
from tests.raft.test_fsm_deployments import _deployments, _status, _web

SETUP = {
    "strategy": "canary",
    "groups": {"web": {"desired_canaries": 1, "auto_promote": False}},
}


def _canary_log(**update: Any) -> tuple[Log, str]:
    log = Log()
    log.apply(cmd("job.upsert", job=_web(strategy="canary", canary=1, **update)))
    _status(log, "successful")
    log.apply(cmd("job.upsert", job=_web(image="v1", strategy="canary", canary=1, **update)))
    return log, _deployments(log)[-1]["id"]


def test_progress_stores_the_setup_and_the_canaries() -> None:
    log, dep_id = _canary_log()
    counts = {"web": {"placed": 1, "healthy": 0, "canaries": ["a9"]}}
    (r,) = log.apply(cmd("deployment.progress", id=dep_id, groups=counts, setup=SETUP))
    doc = r["deployment"]
    assert doc["strategy"] == "canary"
    assert doc["groups"]["web"]["desired_canaries"] == 1
    assert doc["groups"]["web"]["canaries"] == ["a9"]
    assert doc["groups"]["web"]["auto_promote"] is False


def test_blocked_then_promoted_marks_the_job() -> None:
    log, dep_id = _canary_log()
    (r,) = log.apply(cmd("deployment.promote", id=dep_id))
    assert r["ok"] is False and r["status"] == 409 and "blocked-on-promotion" in r["message"]
    assert "promoted_version" not in log.state.table("jobs")["web"]
    blocked = _status(log, "blocked-on-promotion")["deployment"]
    assert blocked["status"] == "blocked-on-promotion"
    (r,) = log.apply(cmd("deployment.promote", ts=5000, id=dep_id))
    assert r["ok"] and r["deployment"]["status"] == "running" and r["deployment"]["promoted"]
    assert r["deployment"]["require_progress_by"] == 5000 + 600_000
    assert log.state.table("jobs")["web"]["promoted_version"] == 1
    (again,) = log.apply(cmd("deployment.promote", id=dep_id))
    assert again["ok"] is False and again["status"] == 409


def test_a_blocked_deployment_can_fail_and_reverts_unpromoted() -> None:
    log, _ = _canary_log(auto_revert=True)
    _status(log, "blocked-on-promotion")
    failed = _status(log, "failed", description="canary a9 of group web missed its deadline")
    assert failed["deployment"]["reverted_to"] == 0
    job = log.state.table("jobs")["web"]
    # the stable version ran before: its replicas are not tried as canaries again
    assert job["version"] == 2 and job["promoted_version"] == 2


def test_only_the_controller_cancels_a_blocked_deployment() -> None:
    log, dep_id = _canary_log()
    (r,) = log.apply(cmd("deployment.status", id=dep_id, status="cancelled"))
    assert r["ok"] is False and r["status"] == 409
    _status(log, "blocked-on-promotion")
    cancelled = _status(log, "cancelled", description="superseded by version 2")["deployment"]
    assert cancelled["status"] == "cancelled"
