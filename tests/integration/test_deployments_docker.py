"""Deployments end to end: real heroctld processes with their agents, a real
Docker engine, http health checks on 127.0.0.1, a webhook receiver.

A version whose health check fails misses its healthy_deadline, its
deployment fails and, with auto_revert, the job is resubmitted as its last
stable version: it ends on the previous spec, every replica healthy, and
`job.failed` says both versions (in the events and to a webhook). A successful deployment marks its version
stable. Killing the leader in the middle of a deployment: the new leader
resumes it from the replicated state and it completes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_events_webhooks import Receiver, add_webhook
from tests.integration.test_workloads import (
    agent_cluster,
    api,
    containers,
    delete_and_wait_gone,
    docker_client,  # noqa: F401 - a fixture
    live,
    submit,
    wait_healthy,
    web_job,
)
from tests.support.cluster import Cluster, wait_until
from tests.support.workloads import docker_unavailable

_SKIP = docker_unavailable()
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(_SKIP is not None, reason=_SKIP or ""),
]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = agent_cluster(tmp_path_factory.mktemp("deployments"))
    try:
        yield c
    finally:
        c.stop()


def deploying_job(
    name: str, version: str, *, check_path: str = "/", min_healthy: str = "1s", **update: Any
) -> dict[str, Any]:
    job = web_job(name, 2, version=version)
    group = job["groups"][0]
    group["update"] = {
        "max_parallel": 1,
        "min_healthy_time": min_healthy,
        "healthy_deadline": "8s",
        "progress_deadline": "30s",
        **update,
    }
    group["tasks"][0]["check"]["path"] = check_path
    return job


def deployment_of(
    c: Cluster, job: str, version: int, status: str, timeout: float = 60
) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for d in api(c).get(f"/v1/deployments?job={job}").body:
            if d["version"] == version and d["status"] == status:
                return d
        return None

    return wait_until(found, timeout, 0.2, f"version {version} of {job} {status}")


def test_failing_health_check_rolls_back_to_the_stable_version(
    shared: Cluster,
    docker_client: Any,  # noqa: F811
) -> None:
    receiver = Receiver().up()
    try:
        hook = add_webhook(api(shared), receiver.url, ["job.failed"])
        _rolls_back(shared, docker_client)
        delivered = wait_until(
            lambda: [r for r in receiver.received() if r.body["data"]["job"] == "rollback"],
            30,
            0.2,
            "job.failed delivered to the webhook",
        )
        assert delivered[0].signed and delivered[0].event == "job.failed"
        data = delivered[0].body["data"]
        assert (data["version"], data["reverted_to"], data["revert_version"]) == (1, 0, 2)
        assert api(shared).delete(f"/v1/webhooks/{hook['id']}").status in (200, 204)
    finally:
        receiver.close()
    delete_and_wait_gone(shared, docker_client, "rollback")


def _rolls_back(shared: Cluster, docker_client: Any) -> None:  # noqa: F811
    submit(shared, deploying_job("rollback", "1", auto_revert=True))
    deployment_of(shared, "rollback", 0, "successful")
    versions = {
        v["version"]: v["stable"] for v in api(shared).get("/v1/jobs/rollback/versions").body
    }
    assert versions == {0: True}
    submit(shared, deploying_job("rollback", "2", check_path="/missing", auto_revert=True))
    failed = deployment_of(shared, "rollback", 1, "failed", timeout=60)
    assert failed["reverted_to"] == 0 and failed["revert_version"] == 2
    assert "missed its healthy deadline" in failed["status_description"]
    deployment_of(shared, "rollback", 2, "successful", timeout=90)
    job = api(shared).get("/v1/jobs/rollback").body
    assert job["version"] == 2 and job["stable"] is True
    assert job["groups"][0]["tasks"][0]["env"] == {"VERSION": "1"}
    allocs = wait_healthy(shared, "rollback", 2)
    assert {a["job_version"] for a in allocs} == {2}

    # The failed version's container is stopped by its agent after the
    # servers stopped its allocation (its replacement may be healthy first):
    # wait until only the live allocations' containers run.
    def only_live() -> list[Any] | None:
        running = containers(docker_client, shared, "rollback")
        ids = {k.labels["heroctl.alloc_id"] for k in running}
        return running if ids == {a["id"] for a in allocs} and len(running) == 2 else None

    try:
        running = wait_until(only_live, 30, 0.2, "only the live allocations' containers")
    except TimeoutError as e:
        running = containers(docker_client, shared, "rollback")
        seen = [(k.labels["heroctl.alloc_id"][:8], k.attrs["Config"]["Env"]) for k in running]
        raise AssertionError(f"{e}: live {[a['id'][:8] for a in allocs]}, running {seen}") from None
    assert all("VERSION=1" in k.attrs["Config"]["Env"] for k in running)
    events = api(shared).get("/v1/events?topic=job.failed&limit=1000").body
    (event,) = [e["data"] for e in events if e["data"]["job"] == "rollback"]
    assert event["version"] == 1 and event["reverted_to"] == 0 and event["revert_version"] == 2


def test_without_auto_revert_a_failing_version_halts(
    shared: Cluster,
    docker_client: Any,  # noqa: F811
) -> None:
    submit(shared, deploying_job("halts", "1"))
    deployment_of(shared, "halts", 0, "successful")
    submit(shared, deploying_job("halts", "2", check_path="/missing"))
    failed = deployment_of(shared, "halts", 1, "failed")
    assert "the deployment halted" in failed["status_description"]
    job = api(shared).get("/v1/jobs/halts").body
    assert job["version"] == 1 and job["stable"] is False
    old = [a for a in live(shared, "halts") if a["job_version"] == 0]
    assert len(old) == 1 and old[0]["healthy"] is True  # max_parallel 1: one kept
    events = api(shared).get("/v1/events?topic=job.failed&limit=1000").body
    (event,) = [e["data"] for e in events if e["data"]["job"] == "halts"]
    assert event["version"] == 1 and "halted" in event["reason"]
    # reverting by hand brings the stable version back
    r = api(shared).post("/v1/jobs/halts/revert", {"version": 0})
    assert r.status == 200 and r.body["version"] == 2, r.body
    deployment_of(shared, "halts", 2, "successful", timeout=90)
    delete_and_wait_gone(shared, docker_client, "halts")


def test_a_new_leader_resumes_a_deployment(tmp_path: Path, docker_client: Any) -> None:  # noqa: F811
    c = agent_cluster(tmp_path)
    try:
        submit(c, deploying_job("resume", "1"))
        deployment_of(c, "resume", 0, "successful")
        # min_healthy_time 4s per replica: the deployment is still running when
        # the leader dies
        submit(c, deploying_job("resume", "2", min_healthy="4s", healthy_deadline="20s"))
        running = deployment_of(c, "resume", 1, "running")
        wait_until(
            lambda: any(a["job_version"] == 1 for a in live(c, "resume")),
            30,
            0.2,
            "a first replacement placed",
        )
        old = c.leader()
        old.kill()
        rest = c.live()
        new = c.leader(among=rest, timeout=30)
        assert new is not old
        done = wait_until(
            lambda: next(
                (
                    d
                    for d in new.get("/v1/deployments?job=resume").body
                    if d["id"] == running["id"] and d["status"] == "successful"
                ),
                None,
            ),
            90,
            0.3,
            "the deployment completed under the new leader",
        )
        assert done["groups"]["app"]["healthy"] == 2
        job = new.get("/v1/jobs/resume").body
        assert job["version"] == 1 and job["stable"] is True
    finally:
        c.stop()
