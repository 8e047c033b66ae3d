"""Canary and blue-green deployments end to end: real heroctld processes with
their agents, a real Docker engine, http health checks on 127.0.0.1.

A canary runs beside the old containers until promoted, then the rest roll;
blue-green runs a full new set beside the old one and promote stops the old
set; a canary whose health check fails fails the deployment and, with
auto_revert, the old containers stay.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_deployments_docker import deploying_job, deployment_of
from tests.integration.test_workloads import (
    agent_cluster,
    api,
    containers,
    delete_and_wait_gone,
    docker_client,  # noqa: F401 - a fixture
    live,
    submit,
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
    c = agent_cluster(tmp_path_factory.mktemp("canaries"))
    try:
        yield c
    finally:
        c.stop()


def _env_versions(docker_client: Any, c: Cluster, job: str) -> list[str]:  # noqa: F811
    found = []
    for container in containers(docker_client, c, job):
        env = [e for e in container.attrs["Config"]["Env"] if e.startswith("VERSION=")]
        found.extend(e.split("=", 1)[1] for e in env)
    return sorted(found)


def test_a_canary_waits_beside_the_old_containers_then_completes(
    shared: Cluster,
    docker_client: Any,  # noqa: F811
) -> None:
    submit(shared, deploying_job("canary", "1", strategy="canary"))
    deployment_of(shared, "canary", 0, "successful")
    submit(shared, deploying_job("canary", "2", strategy="canary"))
    waiting = deployment_of(shared, "canary", 1, "blocked-on-promotion")
    assert len(waiting["groups"]["app"]["canaries"]) == 1
    wait_until(
        lambda: _env_versions(docker_client, shared, "canary") == ["1", "1", "2"],
        30,
        0.2,
        "the canary's container beside the two old ones",
    )
    r = api(shared).post(f"/v1/deployments/{waiting['id']}/promote")
    assert r.status == 200, r.body
    deployment_of(shared, "canary", 1, "successful", timeout=90)
    wait_until(
        lambda: _env_versions(docker_client, shared, "canary") == ["2", "2"],
        60,
        0.2,
        "only version 2's containers",
    )
    delete_and_wait_gone(shared, docker_client, "canary")


def test_blue_green_switches_to_the_new_set(
    shared: Cluster,
    docker_client: Any,  # noqa: F811
) -> None:
    submit(shared, deploying_job("bluegreen", "1", strategy="blue-green"))
    deployment_of(shared, "bluegreen", 0, "successful")
    submit(shared, deploying_job("bluegreen", "2", strategy="blue-green"))
    waiting = deployment_of(shared, "bluegreen", 1, "blocked-on-promotion")
    healthy = [a for a in live(shared, "bluegreen") if a["healthy"] is True]
    assert sorted(a["job_version"] for a in healthy) == [0, 0, 1, 1]
    assert api(shared).post(f"/v1/deployments/{waiting['id']}/promote").status == 200
    deployment_of(shared, "bluegreen", 1, "successful", timeout=60)
    wait_until(
        lambda: _env_versions(docker_client, shared, "bluegreen") == ["2", "2"],
        60,
        0.2,
        "the old set stopped",
    )
    delete_and_wait_gone(shared, docker_client, "bluegreen")


def test_a_failing_canary_reverts_and_the_old_containers_stay(
    shared: Cluster,
    docker_client: Any,  # noqa: F811
) -> None:
    update = {"strategy": "canary", "auto_revert": True}
    submit(shared, deploying_job("badcanary", "1", **update))
    deployment_of(shared, "badcanary", 0, "successful")
    submit(shared, deploying_job("badcanary", "2", check_path="/missing", **update))
    failed = deployment_of(shared, "badcanary", 1, "failed", timeout=60)
    assert failed["reverted_to"] == 0 and "canary" in failed["status_description"]
    deployment_of(shared, "badcanary", 2, "successful", timeout=90)
    wait_until(
        lambda: _env_versions(docker_client, shared, "badcanary") == ["1", "1"],
        60,
        0.2,
        "the canary gone, version 1's spec everywhere",
    )
    delete_and_wait_gone(shared, docker_client, "badcanary")
