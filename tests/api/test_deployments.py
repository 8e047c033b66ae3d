"""Deployments against a real server whose node acts on its allocations
(tests/support/acting_node.py, its health chosen by the task's image): a
version that becomes healthy succeeds and is marked stable; an unhealthy one
fails, rolling back with auto_revert (job.failed carries both versions) or
halting without it; pause, resume, fail and revert through the API; bad
requests answer the contract's error and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.authutil import as_, assert_error, make_token, put_policy
from tests.support.acting_node import ActingNode
from tests.support.cluster import Cluster, Server, wait_until

GOOD, BAD, SLOW = "busybox:1", "busybox:bad", "busybox:slow"


class HealthNode(ActingNode):
    """Reports a started allocation healthy, unless its task's image says
    `bad` (healthy false: it missed its healthy deadline) or `slow` (health
    unknown until the test reports it)."""

    @staticmethod
    def _update_for(alloc: dict[str, Any]) -> dict[str, Any] | None:
        update = ActingNode._update_for(alloc)
        if update is None or alloc["status"] != "pending" or alloc["desired_status"] != "run":
            return update
        image = alloc["group_spec"]["tasks"][0]["image"]
        if image == BAD:
            update["healthy"] = False
        elif image == SLOW:
            update["healthy"] = None
        return update


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    c = Cluster(tmp_path_factory.mktemp("deployments"), 1).start()
    try:
        yield c.servers[0]
    finally:
        c.stop()


@pytest.fixture(scope="module")
def node(server: Server) -> Iterator[HealthNode]:
    n = HealthNode(server, "deploy-node").start()
    try:
        yield n
    finally:
        n.stop()
        assert not n.errors, n.errors[:5]


def spec(name: str, image: str = GOOD, count: int = 2, **update: Any) -> dict[str, Any]:
    task = {"name": "web", "image": image, "resources": {"cpu": 50, "memory": 16}}
    return {
        "name": name,
        "groups": [
            {
                "name": "app",
                "count": count,
                "update": {"max_parallel": 1, **update},
                "tasks": [task],
            }
        ],
    }


def deployments(server: Server, job: str) -> list[dict[str, Any]]:
    r = server.get(f"/v1/deployments?job={job}")
    assert r.status == 200, r.body
    return r.body


def latest(server: Server, job: str, status: str | None = None) -> dict[str, Any]:
    """The job's newest deployment (once it has `status`)."""

    def found() -> dict[str, Any] | None:
        docs = deployments(server, job)
        if docs and (status is None or docs[0]["status"] == status):
            return docs[0]
        return None

    return wait_until(found, timeout=30, message=f"a {status} deployment of {job}")


def submit(server: Server, doc: dict[str, Any]) -> dict[str, Any]:
    r = server.post("/v1/jobs", doc)
    assert r.status in (200, 201), r.body
    return r.body


def stable_versions(server: Server, job: str) -> dict[int, bool]:
    return {v["version"]: v["stable"] for v in server.get(f"/v1/jobs/{job}/versions").body}


def commit_index(server: Server) -> int:
    return int(server.get("/v1/cluster/status").body["commit_index"])


def job_failed(server: Server, job: str) -> list[dict[str, Any]]:
    events = server.get("/v1/events?topic=job.failed&limit=1000").body
    return [e["data"] for e in events if e["data"]["job"] == job]


def test_a_healthy_version_succeeds_and_is_marked_stable(server: Server, node: HealthNode) -> None:
    submit(server, spec("ok"))
    done = latest(server, "ok", "successful")
    assert done["version"] == 0 and done["strategy"] == "rolling" and done["job"] == "ok"
    assert done["groups"]["app"] == {
        "desired": 2,
        "placed": 2,
        "healthy": 2,
        "unhealthy": 0,
        "auto_revert": False,
        "progress_deadline": 600,
        "desired_canaries": 0,
        "auto_promote": False,
    }
    assert server.get(f"/v1/deployments/{done['id']}").body == done
    assert stable_versions(server, "ok") == {0: True}
    submit(server, spec("ok", image="busybox:2"))
    second = latest(server, "ok", "successful")
    assert second["version"] == 1 and stable_versions(server, "ok") == {1: True, 0: True}
    assert [d["version"] for d in deployments(server, "ok")] == [1, 0]
    listed = server.get("/v1/deployments").body
    assert {d["id"] for d in listed} >= {done["id"], second["id"]}


def test_long_polling_a_deployment(server: Server, node: HealthNode) -> None:
    submit(server, spec("poll", image=SLOW, count=1))
    running = latest(server, "poll", "running")
    # once its one replica is placed and running (health unknown) nothing moves
    wait_until(
        lambda: server.get(f"/v1/deployments/{running['id']}").body["groups"]["app"]["placed"],
        timeout=20,
    )
    r = server.get(f"/v1/deployments/{running['id']}")
    index = int(r.header("X-HeroCtl-Index") or 0)
    held = server.get(f"/v1/deployments/{running['id']}?index={index}&wait=1s")
    assert held.status == 200 and int(held.header("X-HeroCtl-Index") or 0) == index
    assert server.post(f"/v1/deployments/{running['id']}/fail").status == 200
    changed = server.get(f"/v1/deployments?job=poll&index={index}&wait=20s")
    assert int(changed.header("X-HeroCtl-Index") or 0) > index
    assert changed.body[0]["status"] == "failed"


def test_an_unhealthy_version_is_rolled_back_with_auto_revert(
    server: Server, node: HealthNode
) -> None:
    submit(server, spec("revert", auto_revert=True))
    latest(server, "revert", "successful")
    submit(server, spec("revert", image=BAD, auto_revert=True))
    failed = wait_until(
        lambda: next(
            (
                d
                for d in deployments(server, "revert")
                if d["version"] == 1 and d["status"] == "failed"
            ),
            None,
        ),
        timeout=30,
        message="version 1's deployment failed",
    )
    assert failed["reverted_to"] == 0 and failed["revert_version"] == 2
    assert "missed its healthy deadline" in failed["status_description"]
    back = latest(server, "revert", "successful")
    assert back["version"] == 2
    job = server.get("/v1/jobs/revert").body
    assert job["version"] == 2 and job["groups"][0]["tasks"][0]["image"] == GOOD
    assert job["stable"] is True
    allocs = server.get("/v1/allocations?job=revert").body
    running = [a for a in allocs if a["desired_status"] == "run"]
    assert len(running) == 2 and all(a["job_version"] == 2 for a in running)
    (event,) = job_failed(server, "revert")
    assert event["version"] == 1 and event["reverted_to"] == 0 and event["revert_version"] == 2
    assert "rolling back to version 0" in event["reason"]


def test_without_auto_revert_the_deployment_halts(server: Server, node: HealthNode) -> None:
    submit(server, spec("halt", count=3))
    latest(server, "halt", "successful")
    submit(server, spec("halt", image=BAD, count=3))
    failed = latest(server, "halt", "failed")
    assert failed["version"] == 1 and "reverted_to" not in failed
    assert "the deployment halted" in failed["status_description"]
    (event,) = job_failed(server, "halt")
    assert event["version"] == 1 and "halted" in event["reason"] and "reverted_to" not in event
    job = server.get("/v1/jobs/halt").body
    assert job["version"] == 1 and job["stable"] is False
    old = [
        a
        for a in server.get("/v1/allocations?job=halt").body
        if a["desired_status"] == "run" and a["job_version"] == 0
    ]
    assert len(old) == 2  # one replaced (unhealthy), the rest kept


def test_pause_holds_replacements_and_resume_continues(server: Server, node: HealthNode) -> None:
    submit(server, spec("pause", count=2))
    latest(server, "pause", "successful")
    submit(server, spec("pause", image=SLOW, count=2))
    dep = latest(server, "pause", "running")

    def replacements() -> list[dict[str, Any]]:
        allocs = server.get("/v1/allocations?job=pause").body
        return [a for a in allocs if a["job_version"] == 1 and a["desired_status"] == "run"]

    first = wait_until(lambda: [a for a in replacements() if a["status"] == "running"], timeout=20)
    assert len(first) == 1
    r = server.post(f"/v1/deployments/{dep['id']}/pause")
    assert r.status == 200 and r.body["status"] == "paused", r.body
    assert_error(server.post(f"/v1/deployments/{dep['id']}/pause"), 409, "deployment_status")
    assert node.node.report([{"id": first[0]["id"], "healthy": True}]).status == 200
    # the scheduler saw the healthy replacement and held the next one
    wait_until(
        lambda: "paused" in str(server.get("/v1/jobs/pause").body["deployment"]["halted"]),
        timeout=20,
    )
    held = latest(server, "pause", "paused")
    wait_until(lambda: deployments(server, "pause")[0]["groups"]["app"]["healthy"] == 1, timeout=20)
    assert len(replacements()) == 1 and held["id"] == dep["id"]
    r = server.post(f"/v1/deployments/{dep['id']}/resume")
    assert r.status == 200 and r.body["status"] == "running"
    assert_error(server.post(f"/v1/deployments/{dep['id']}/resume"), 409, "deployment_status")
    second = wait_until(
        lambda: [
            a for a in replacements() if a["id"] != first[0]["id"] and a["status"] == "running"
        ],
        timeout=20,
    )
    assert node.node.report([{"id": second[0]["id"], "healthy": True}]).status == 200
    assert latest(server, "pause", "successful")["id"] == dep["id"]


def test_fail_by_hand_and_refusals(server: Server, node: HealthNode) -> None:
    submit(server, spec("manual", image=SLOW, count=1))
    dep = latest(server, "manual", "running")
    wait_until(lambda: deployments(server, "manual")[0]["groups"]["app"]["placed"], timeout=20)
    wait_until(
        lambda: all(
            a["status"] == "running" for a in server.get("/v1/allocations?job=manual").body
        ),
        timeout=20,
    )
    before = commit_index(server)
    assert_error(server.post("/v1/deployments/0000000000000000/fail"), 404, "deployment_not_found")
    assert_error(server.get("/v1/deployments/0000000000000000"), 404, "deployment_not_found")
    assert commit_index(server) == before
    r = server.post(f"/v1/deployments/{dep['id']}/fail")
    assert r.status == 200 and r.body["status"] == "failed"
    assert "failed by a user" in r.body["status_description"]
    before = commit_index(server)
    for action in ("fail", "pause", "resume"):
        assert_error(server.post(f"/v1/deployments/{dep['id']}/{action}"), 409, "deployment_status")
    assert commit_index(server) == before


def test_revert_by_hand_and_its_refusals(server: Server, node: HealthNode) -> None:
    submit(server, spec("handrev"))
    latest(server, "handrev", "successful")
    submit(server, spec("handrev", image="busybox:2"))
    latest(server, "handrev", "successful")
    before = commit_index(server)
    assert_error(server.post("/v1/jobs/handrev/revert", {"version": 7}), 409, "version_not_found")
    assert_error(server.post("/v1/jobs/handrev/revert", {"version": "0"}), 400, "invalid_field")
    assert_error(server.post("/v1/jobs/handrev/revert", {"version": 1.5}), 400, "invalid_field")
    assert_error(server.post("/v1/jobs/handrev/revert", {}), 400, "missing_field")
    assert_error(server.post("/v1/jobs/nope/revert", {"version": 0}), 404, "job_not_found")
    assert commit_index(server) == before
    r = server.post("/v1/jobs/handrev/revert", {"version": 0})
    assert r.status == 200 and r.body["version"] == 2 and r.body["reverted_to"] == 0
    done = latest(server, "handrev", "successful")
    assert done["version"] == 2
    job = server.get("/v1/jobs/handrev").body
    assert job["groups"][0]["tasks"][0]["image"] == GOOD and job["stable"] is True


@pytest.mark.parametrize(
    ("update", "path"),
    [
        ({"strategy": "rainbow", "canary": 1}, "groups[0].update.canary"),
        ({"strategy": "canary", "canary": 3}, "groups[0].update.canary"),
        ({"strategy": "canary", "canary": 0}, "groups[0].update.canary"),
        ({"strategy": "blue-green", "auto_promote": 1}, "groups[0].update.auto_promote"),
        ({"strategy": "nope"}, "groups[0].update.strategy"),
        ({"progress_deadline": "1m"}, "groups[0].update.progress_deadline"),
        ({"auto_revert": "yes"}, "groups[0].update.auto_revert"),
    ],
)
def test_bad_update_settings_are_refused(server: Server, update: dict[str, Any], path: str) -> None:
    before = commit_index(server)
    r = server.post("/v1/jobs", spec("badupdate", **update))
    assert_error(r, 400)
    assert path in r.body["message"]
    assert commit_index(server) == before


def test_reading_tokens_may_watch_but_not_steer(server: Server, node: HealthNode) -> None:
    submit(server, spec("guard", image=SLOW, count=1))
    dep = latest(server, "guard", "running")
    put_policy(server, "deploy-readers", {"jobs": "read"})
    put_policy(server, "deploy-writers", {"jobs": "write"})
    reader = make_token(server, ["deploy-readers"])["secret_id"]
    writer = make_token(server, ["deploy-writers"])["secret_id"]
    assert as_(server, reader, "GET", "/v1/deployments?job=guard").body[0]["id"] == dep["id"]
    assert as_(server, reader, "GET", f"/v1/deployments/{dep['id']}").status == 200
    for path, body in (
        (f"/v1/deployments/{dep['id']}/pause", None),
        (f"/v1/deployments/{dep['id']}/fail", None),
        ("/v1/jobs/guard/revert", {"version": 0}),
    ):
        assert_error(as_(server, reader, "POST", path, body), 403, "forbidden")
    assert latest(server, "guard")["status"] == "running"
    r = as_(server, writer, "POST", f"/v1/deployments/{dep['id']}/pause")
    assert r.status == 200 and r.body["status"] == "paused", r.body
    r = as_(server, writer, "POST", "/v1/jobs/guard/revert", {"version": 0})
    assert r.status == 200 and r.body["version"] == 1, r.body


def test_stagger_pauses_between_batches(server: Server, node: HealthNode) -> None:
    """Each replacement after the first waits `stagger` from the moment the
    one before it turned healthy."""
    submit(server, spec("staggered", count=3, stagger="2s"))
    latest(server, "staggered", "successful")
    changed = spec("staggered", count=3, stagger="2s")
    changed["groups"][0]["tasks"][0]["env"] = {"V": "2"}
    submit(server, changed)
    done = latest(server, "staggered", "successful")
    assert done["version"] == 1
    allocs = server.get("/v1/allocations?job=staggered").body
    new = sorted(
        (server.get(f"/v1/allocations/{a['id']}").body for a in allocs if a["job_version"] == 1),
        key=lambda a: a["create_time"],
    )
    assert len(new) == 3
    for before, after in zip(new, new[1:], strict=False):
        assert after["create_time"] - before["healthy_at"] >= 2000, (before, after)


def test_the_submit_answer_names_the_deployment_it_started(
    server: Server, node: HealthNode
) -> None:
    first = submit(server, spec("named"))
    (dep,) = deployments(server, "named")
    assert first["deployment_id"] == dep["id"] and dep["version"] == first["version"]
    again = submit(server, spec("named"))  # the same groups: no deployment
    assert again["deployment_id"] is None
    scaled = server.post("/v1/jobs/named/scale", {"count": 3}).body
    assert scaled["deployment_id"] == deployments(server, "named")[0]["id"]
