"""Job events (raft.job_events): submitted, status, deployed and failed once
per version, deleted."""

from __future__ import annotations

from raft.fsm_events import last_seq
from tests.raft.event_log import WEB, Log, cluster_with_job, cmd


def test_deployed_once_per_version_and_again_for_a_new_one() -> None:
    log = cluster_with_job()
    for node, alloc in (("n1", "a1"), ("n2", "a2")):
        log.apply(
            cmd(
                "alloc.update",
                node=node,
                updates=[{"id": alloc, "status": "running", "healthy": True}],
            )
        )
    assert log.types().count("job.deployed") == 1
    # A blip (unhealthy, healthy again) does not announce the same version twice.
    log.apply(cmd("alloc.update", node="n1", updates=[{"id": "a1", "healthy": False}]))
    log.apply(cmd("alloc.update", node="n1", updates=[{"id": "a1", "healthy": True}]))
    assert log.types().count("job.deployed") == 1
    # Version 1 replaces both.
    log.apply(cmd("job.upsert", job=dict(WEB, meta={"v": "2"})))
    jmi = log.state.table("jobs")["web"]["job_modify_index"]
    places = [
        {"id": "b1", "node": "n1", "group": "web", "job_version": 1},
        {"id": "b2", "node": "n2", "group": "web", "job_version": 1},
    ]
    stops = [{"id": "a1", "reason": "replaced"}, {"id": "a2", "reason": "replaced"}]
    log.apply(cmd("plan.apply", job="web", job_modify_index=jmi, places=places, stops=stops))
    for node, alloc in (("n1", "b1"), ("n2", "b2")):
        log.apply(
            cmd(
                "alloc.update",
                node=node,
                updates=[{"id": alloc, "status": "running", "healthy": True}],
            )
        )
    deployed = [e["data"] for e in log.events() if e["type"] == "job.deployed"]
    assert deployed == [
        {"job": "web", "version": 0, "allocations": 2},
        {"job": "web", "version": 1, "allocations": 2},
    ]


def test_job_failed_when_the_update_of_a_version_without_deployment_halts_once() -> None:
    log = cluster_with_job()
    log.state.table("deployments").clear()  # as stored before deployments existed
    log.state.deployments_by_job.clear()
    jmi = log.state.table("jobs")["web"]["job_modify_index"]
    halted = {"web": "replacement a1 is unhealthy; submit a new version to continue"}
    for _ in range(2):
        log.apply(cmd("plan.apply", job="web", job_modify_index=jmi, job_version=0, halted=halted))
    failed = [e for e in log.events() if e["type"] == "job.failed"]
    assert len(failed) == 1
    assert failed[0]["data"]["version"] == 0 and "unhealthy" in failed[0]["data"]["reason"]


def test_placement_failures_and_delete_are_job_updates() -> None:
    log = Log()
    log.apply(cmd("job.upsert", job=WEB))
    jmi = log.state.table("jobs")["web"]["job_modify_index"]
    log.apply(
        cmd(
            "plan.apply",
            job="web",
            job_modify_index=jmi,
            failures=[{"group": "web", "reason": "no nodes"}],
        )
    )
    update = log.events()[-1]
    assert update["type"] == "job.updated" and update["data"]["placement_failures"] == 1
    mark = last_seq(log.state)
    log.apply(cmd("job.delete", name="web"))
    assert log.events(mark)[-1]["data"] == {"job": "web", "status": "deleted"}
    assert "job:web" not in log.state.table("event_marks")
