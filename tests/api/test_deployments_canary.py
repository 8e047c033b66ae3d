"""Canary and blue-green deployments against a real server whose node acts on
its allocations (tests/support/acting_node.py, health chosen by the image): a
canary waits for promotion beside the old replicas and completes once
promoted, auto_promote promotes by itself, a failing canary fails the
deployment and reverts, blue-green runs both sets then switches at once, and
a promote of a deployment that does not wait answers 409 and changes nothing."""

from __future__ import annotations

from typing import Any

from tests.api.authutil import assert_error
from tests.api.test_deployments import (
    BAD,
    GOOD,
    HealthNode,
    commit_index,
    deployments,
    latest,
    node,
    server,
    spec,
    submit,
)
from tests.support.cluster import Server, wait_until

__all__ = ["node", "server"]  # the module's fixtures: a server and its acting node


def running(server: Server, job: str) -> list[dict[str, Any]]:
    allocs = server.get(f"/v1/allocations?job={job}").body
    return [a for a in allocs if a["desired_status"] == "run"]


def versions(server: Server, job: str) -> list[int]:
    return sorted(a["job_version"] for a in running(server, job))


def blocked(server: Server, job: str, version: int) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        docs = [d for d in deployments(server, job) if d["version"] == version]
        return docs[0] if docs and docs[0]["status"] == "blocked-on-promotion" else None

    return wait_until(found, timeout=30, message=f"version {version} blocked on promotion")


def test_a_canary_waits_for_promotion_then_completes(server: Server, node: HealthNode) -> None:
    submit(server, spec("can", count=3, strategy="canary"))
    latest(server, "can", "successful")  # a first version has nothing to try first
    submit(server, spec("can", image="busybox:2", count=3, strategy="canary"))
    waiting = blocked(server, "can", 1)
    assert waiting["strategy"] == "canary"
    group = waiting["groups"]["app"]
    assert group["desired_canaries"] == 1 and len(group["canaries"]) == 1
    assert group["healthy"] == 1 and "promote" in waiting["status_description"]
    assert versions(server, "can") == [0, 0, 0, 1]  # the old ones keep running
    before = commit_index(server)
    r = server.post(f"/v1/deployments/{waiting['id']}/promote")
    assert r.status == 200 and r.body["status"] == "running" and r.body["promoted"], r.body
    assert commit_index(server) > before
    done = latest(server, "can", "successful")
    assert done["id"] == waiting["id"] and done["groups"]["app"]["canaries"] == group["canaries"]
    wait_until(lambda: versions(server, "can") == [1, 1, 1], timeout=30, message="v1 everywhere")
    assert group["canaries"][0] in {a["id"] for a in running(server, "can")}
    assert_error(server.post(f"/v1/deployments/{done['id']}/promote"), 409, "deployment_status")


def test_auto_promote_promotes_once_the_canaries_are_healthy(
    server: Server, node: HealthNode
) -> None:
    submit(server, spec("auto", count=2, strategy="canary", auto_promote=True))
    latest(server, "auto", "successful")
    submit(server, spec("auto", image="busybox:2", count=2, strategy="canary", auto_promote=True))
    done = latest(server, "auto", "successful")
    assert done["version"] == 1 and done["promoted"] is True
    wait_until(lambda: versions(server, "auto") == [1, 1], timeout=30, message="v1 everywhere")


def test_a_failing_canary_fails_the_deployment_and_reverts(
    server: Server, node: HealthNode
) -> None:
    update = {"strategy": "canary", "auto_revert": True}
    submit(server, spec("badcan", count=2, **update))
    latest(server, "badcan", "successful")
    submit(server, spec("badcan", image=BAD, count=2, **update))
    failed = wait_until(
        lambda: next(
            (
                d
                for d in deployments(server, "badcan")
                if d["version"] == 1 and d["status"] == "failed"
            ),
            None,
        ),
        timeout=30,
        message="version 1's deployment failed",
    )
    assert "canary" in failed["status_description"] and failed["reverted_to"] == 0
    back = latest(server, "badcan", "successful")
    assert back["version"] == 2
    # the canary stopped, the rest rolled to version 2 (version 0's spec)
    wait_until(lambda: versions(server, "badcan") == [2, 2], timeout=30, message="v2 everywhere")
    job = server.get("/v1/jobs/badcan").body
    assert job["version"] == 2 and job["groups"][0]["tasks"][0]["image"] == GOOD


def test_blue_green_runs_both_sets_then_switches(server: Server, node: HealthNode) -> None:
    submit(server, spec("bg", count=2, strategy="blue-green"))
    latest(server, "bg", "successful")
    submit(server, spec("bg", image="busybox:2", count=2, strategy="blue-green"))
    waiting = blocked(server, "bg", 1)
    assert waiting["groups"]["app"]["desired_canaries"] == 2
    assert versions(server, "bg") == [0, 0, 1, 1]
    assert server.post(f"/v1/deployments/{waiting['id']}/promote").status == 200
    wait_until(lambda: versions(server, "bg") == [1, 1], timeout=30, message="the old set stopped")
    assert latest(server, "bg", "successful")["id"] == waiting["id"]


def test_promote_refusals_change_nothing(server: Server, node: HealthNode) -> None:
    submit(server, spec("norm", count=1))
    done = latest(server, "norm", "successful")
    before = commit_index(server)
    assert_error(server.post(f"/v1/deployments/{done['id']}/promote"), 409, "deployment_status")
    assert_error(server.post("/v1/deployments/nope/promote"), 404, "deployment_not_found")
    assert commit_index(server) == before


def test_a_newer_version_cancels_a_deployment_blocked_on_promotion(
    server: Server, node: HealthNode
) -> None:
    submit(server, spec("sup", count=1, strategy="canary"))
    latest(server, "sup", "successful")
    submit(server, spec("sup", image="busybox:2", count=1, strategy="canary"))
    waiting = blocked(server, "sup", 1)
    submit(server, spec("sup", image="busybox:3", count=1, strategy="canary"))
    wait_until(
        lambda: server.get(f"/v1/deployments/{waiting['id']}").body["status"] == "cancelled",
        timeout=30,
        message="the blocked deployment cancelled",
    )
    assert_error(server.post(f"/v1/deployments/{waiting['id']}/promote"), 409, "deployment_status")
