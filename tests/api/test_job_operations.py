"""POST /v1/jobs/:name/scale, POST /v1/jobs/:name/plan and POST
/v1/allocations/:id/restart against a real server, with nodes that act on
their allocations (tests/support/acting_node.py): good requests do what
they say and the cluster carries them out; bad ones answer the contract's
error and change nothing (no raft entry, no new version)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.authutil import as_, assert_error, make_token, put_policy
from tests.support.acting_node import ActingNode
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.http import request


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    c = Cluster(tmp_path_factory.mktemp("job-operations"), 1).start()
    try:
        yield c.servers[0]
    finally:
        c.stop()


@pytest.fixture(scope="module")
def node(server: Server) -> Iterator[ActingNode]:
    n = ActingNode(server, "ops-node").start()
    try:
        yield n
    finally:
        n.stop()
        assert not n.errors, n.errors[:5]


def web(name: str, count: int = 2, image: str = "busybox:1", **group: Any) -> dict[str, Any]:
    return {
        "name": name,
        "groups": [
            {
                "name": "app",
                "count": count,
                "update": {"max_parallel": 1},
                **group,
                "tasks": [
                    {
                        "name": "web",
                        "image": image,
                        "resources": {"cpu": 100, "memory": 64},
                    },
                    {"name": "side", "image": "busybox:1", "resources": {"cpu": 50, "memory": 16}},
                ],
            }
        ],
    }


def commit_index(server: Server) -> int:
    return int(server.get("/v1/cluster/status").body["commit_index"])


def live(server: Server, job: str) -> list[dict[str, Any]]:
    allocs = server.get(f"/v1/allocations?job={job}").body
    return [a for a in allocs if a["desired_status"] == "run"]


def wait_running(server: Server, job: str, n: int) -> list[dict[str, Any]]:
    """`n` allocations of `job` running, and every stopped one reported stopped:
    the cluster has carried the job out and writes nothing more about it."""

    def ready() -> list[dict[str, Any]] | None:
        allocs = server.get(f"/v1/allocations?job={job}").body
        running = [a for a in allocs if a["desired_status"] == "run"]
        ok = len(running) == n and all(a["status"] == "running" for a in running)
        settled = all(a["status"] != "running" for a in allocs if a["desired_status"] == "stop")
        # and the deployment of its version decided (the controller writes no more)
        deploying = any(
            d["status"] == "running" for d in server.get(f"/v1/deployments?job={job}").body
        )
        return running if ok and settled and not deploying else None

    return wait_until(ready, 20, 0.1, f"{n} running allocations of {job}")


def submitted(server: Server, spec: dict[str, Any], running: int) -> dict[str, Any]:
    r = server.post("/v1/jobs", spec)
    assert r.status in (200, 201), r.body
    wait_running(server, spec["name"], running)
    return r.body


def unchanged(server: Server, job: str | None) -> tuple[int, int | None]:
    """What a refused request must leave as it was: the raft index, the job's version."""
    version = server.get(f"/v1/jobs/{job}").body.get("version") if job else None
    return commit_index(server), version


# --- scale -------------------------------------------------------------------------------


def test_scale_up_and_down_is_a_new_version_the_cluster_carries_out(
    server: Server, node: ActingNode
) -> None:
    first = submitted(server, web("scaled", 2), running=2)
    original = {a["id"] for a in live(server, "scaled")}
    r = server.post("/v1/jobs/scaled/scale", {"group": "app", "count": 4})
    assert r.status == 200, r.body
    body = r.body
    assert (body["name"], body["group"], body["previous_count"], body["count"]) == (
        "scaled",
        "app",
        2,
        4,
    )
    assert body["version"] == first["version"] + 1
    assert r.header("X-HeroCtl-Index") == str(body["index"])
    job = server.get("/v1/jobs/scaled").body
    assert job["groups"][0]["count"] == 4 and job["job_modify_index"] == body["job_modify_index"]
    versions = server.get("/v1/jobs/scaled/versions").body
    assert [v["groups"][0]["count"] for v in versions] == [4, 2]
    allocs = wait_running(server, "scaled", 4)
    assert original <= {a["id"] for a in allocs}  # the first two kept running (in place)
    # Down to one, the group named implicitly (the job has one group).
    r = server.post("/v1/jobs/scaled/scale", {"count": 1})
    assert r.status == 200 and r.body["group"] == "app" and r.body["previous_count"] == 4
    wait_running(server, "scaled", 1)
    stopped = [
        a for a in server.get("/v1/allocations?job=scaled").body if a["desired_status"] == "stop"
    ]
    assert len(stopped) == 3 and all("scaled down to 1" in a["desired_reason"] for a in stopped)


def test_scale_check_and_set(server: Server, node: ActingNode) -> None:
    doc = submitted(server, web("scale-cas", 1), running=1)
    before = unchanged(server, "scale-cas")
    r = server.post(
        "/v1/jobs/scale-cas/scale",
        {"count": 2, "job_modify_index": doc["job_modify_index"] - 1},
    )
    assert_error(r, 409, "conflict")
    assert server.get("/v1/jobs/scale-cas").body["version"] == before[1]
    r = server.post(
        "/v1/jobs/scale-cas/scale", {"count": 2, "job_modify_index": doc["job_modify_index"]}
    )
    assert r.status == 200, r.body
    wait_running(server, "scale-cas", 2)


@pytest.mark.parametrize(
    ("job", "body", "status", "code", "starts"),
    [
        ("nope", {"group": "app", "count": 1}, 404, "job_not_found", "job 'nope'"),
        ("scale-bad", {"group": "db", "count": 1}, 400, "invalid_field", "group: "),
        ("scale-bad", {"group": "app", "count": -1}, 400, "invalid_field", "count: "),
        ("scale-bad", {"group": "app", "count": 100_001}, 400, "invalid_field", "count: "),
        ("scale-bad", {"group": "app", "count": "3"}, 400, "invalid_field", "count: "),
        ("scale-bad", {"group": "app", "count": True}, 400, "invalid_field", "count: "),
        ("scale-bad", {"group": "app"}, 400, "missing_field", "count: is required"),
        ("scale-bad", {"group": 7, "count": 1}, 400, "invalid_field", "group: "),
        ("scale-bad", {"count": 1, "job_modify_index": -2}, 400, "invalid_field", "job_modify"),
        ("scale-duo", {"count": 1}, 400, "missing_field", "group: is required"),
    ],
)
def test_scale_refusals_change_nothing(
    server: Server,
    node: ActingNode,
    job: str,
    body: dict[str, Any],
    status: int,
    code: str,
    starts: str,
) -> None:
    if job == "scale-bad" and server.get("/v1/jobs/scale-bad").status == 404:
        submitted(server, web("scale-bad", 1), running=1)
    if job == "scale-duo" and server.get("/v1/jobs/scale-duo").status == 404:
        duo = web("scale-duo", 1)
        duo["groups"].append(dict(duo["groups"][0], name="worker"))
        submitted(server, duo, running=2)
    before = unchanged(server, job if status != 404 else None)
    r = server.post(f"/v1/jobs/{job}/scale", body)
    assert_error(r, status, code)
    assert r.body["message"].startswith(starts), r.body
    assert unchanged(server, job if status != 404 else None) == before


def test_scale_needs_a_json_object(server: Server) -> None:
    r = request("POST", server.url + "/v1/jobs/x/scale", raw=b"[1]", headers=_auth(server))
    assert_error(r, 400, "invalid_json")


# --- plan --------------------------------------------------------------------------------


def test_plan_of_a_new_job_places_it_and_changes_nothing(server: Server, node: ActingNode) -> None:
    before = commit_index(server)
    r = server.post("/v1/jobs/planned-new/plan", web("planned-new", 3))
    assert r.status == 200, r.body
    plan = r.body
    assert plan["diff"]["type"] == "added" and plan["changes"] is True
    assert (plan["job_modify_index"], plan["version"]) == (0, 0)
    assert plan["groups"]["app"]["place"] == 3
    assert {p["node_name"] for p in plan["places"]} == {"ops-node"}
    assert commit_index(server) == before
    assert_error(server.get("/v1/jobs/planned-new"), 404, "job_not_found")


def test_plan_the_same_spec_then_an_image_change(server: Server, node: ActingNode) -> None:
    doc = submitted(server, web("planned", 3), running=3)
    same = server.post("/v1/jobs/planned/plan", web("planned", 3))
    assert same.status == 200, same.body
    assert same.body["diff"]["type"] == "none" and same.body["changes"] is False
    assert same.body["groups"]["app"]["ignore"] == 3
    assert same.body["job_modify_index"] == doc["job_modify_index"]

    before = unchanged(server, "planned")
    r = server.post("/v1/jobs/planned/plan", {"job": web("planned", 3, image="busybox:2")})
    assert r.status == 200, r.body
    plan = r.body
    assert plan["changes"] is True
    counts = plan["groups"]["app"]
    assert (counts["destructive_update"], counts["deferred"], counts["place"]) == (3, 2, 0)
    (group,) = plan["diff"]["groups"]
    task = next(t for t in group["tasks"] if t["name"] == "web")
    assert task["fields"] == [
        {"name": "image", "type": "edited", "old": "busybox:1", "new": "busybox:2"}
    ]
    assert [p["reason"] for p in plan["places"]] == ["update"]
    # Nothing was written: the same raft index, the same version, the same allocations.
    assert unchanged(server, "planned") == before
    assert len(live(server, "planned")) == 3
    # The plan's job_modify_index is what a check-and-set submit wants.
    stale = server.post("/v1/jobs", {**web("planned", 3), "job_modify_index": 1})
    assert_error(stale, 409, "conflict")
    r = server.post(
        "/v1/jobs",
        {**web("planned", 3, image="busybox:2"), "job_modify_index": plan["job_modify_index"]},
    )
    assert r.status == 200, r.body

    def updated() -> bool:
        allocs = wait_running(server, "planned", 3)
        return all(a["job_version"] == r.body["version"] for a in allocs)

    wait_until(updated, 30, 0.1, "the rolling update done")


def test_plan_reports_what_cannot_be_placed(server: Server, node: ActingNode) -> None:
    spec = web("planned-huge", 1)
    spec["groups"][0]["tasks"][0]["resources"]["memory"] = 64_000
    plan = server.post("/v1/jobs/planned-huge/plan", spec).body
    (failure,) = plan["failures"]
    assert failure["group"] == "app" and failure["count"] == 1
    assert "MB free" in failure["reason"]
    assert plan["groups"]["app"]["unplaced"] == 1 and plan["changes"] is True


@pytest.mark.parametrize(
    ("path", "body", "code", "starts"),
    [
        (
            "/v1/jobs/planned-bad/plan",
            {"name": "planned-bad", "groups": [{"name": "g", "tasks": [{"name": "t"}]}]},
            "missing_field",
            "groups[0].tasks[0].image: ",
        ),
        (
            "/v1/jobs/planned-bad/plan",
            {"name": "other", "image": "busybox"},
            "invalid_field",
            "name: the spec names job 'other'",
        ),
        ("/v1/jobs/planned-bad/plan", {"image": "busybox", "count": -1}, "invalid_field", "count"),
        ("/v1/jobs/Bad_Name/plan", {"image": "busybox"}, "invalid_field", "name: "),
    ],
)
def test_plan_refusals(
    server: Server, node: ActingNode, path: str, body: dict[str, Any], code: str, starts: str
) -> None:
    before = commit_index(server)
    r = server.post(path, body)
    assert_error(r, 400, code)
    assert r.body["message"].startswith(starts), r.body
    assert commit_index(server) == before


def test_plan_takes_the_name_from_the_path(server: Server, node: ActingNode) -> None:
    r = server.post("/v1/jobs/from-path/plan", {"image": "busybox", "count": 2})
    assert r.status == 200, r.body
    assert r.body["job"] == "from-path" and r.body["groups"]["from-path"]["place"] == 2


# --- restart -----------------------------------------------------------------------------


def test_restart_a_running_allocation_in_place(server: Server, node: ActingNode) -> None:
    submitted(server, web("restarted", 1), running=1)
    (alloc,) = live(server, "restarted")
    r = server.post(f"/v1/allocations/{alloc['id'][:8]}/restart")  # a prefix is enough
    assert r.status == 200, r.body
    assert r.body["id"] == alloc["id"]
    assert r.body["restart_requested"]["task"] is None
    assert r.body["events"][-1]["message"] == "restart requested by a user"

    def restarted() -> dict[str, Any] | None:
        doc = server.get(f"/v1/allocations/{alloc['id']}").body
        return doc if doc.get("restart_handled") == r.body["restart_requested"]["index"] else None

    doc = wait_until(restarted, 15, 0.1, "the node acted on the restart")
    assert doc["restarts"] == 2  # both tasks, once each
    assert doc["status"] == "running" and doc["node"] == alloc["node"]
    assert [a["id"] for a in live(server, "restarted")] == [alloc["id"]]

    one = server.post(f"/v1/allocations/{alloc['id']}/restart", {"task": "side"})
    assert one.status == 200 and one.body["restart_requested"]["task"] == "side"
    wait_until(
        lambda: (
            server.get(f"/v1/allocations/{alloc['id']}").body["task_states"]["side"]["restarts"]
            == 2
        ),
        15,
        0.1,
        "the side task restarted again",
    )
    states = server.get(f"/v1/allocations/{alloc['id']}").body["task_states"]
    assert states["web"]["restarts"] == 1


def test_restart_refusals_change_nothing(server: Server, node: ActingNode) -> None:
    submitted(server, web("restart-bad", 2), running=2)
    first, second = live(server, "restart-bad")
    assert server.post(f"/v1/allocations/{second['id']}/stop").status == 200
    wait_running(server, "restart-bad", 2)  # its replacement runs, it is complete
    cases = [
        ("nope-" + "0" * 27, {}, 404, "allocation_not_found", "allocation 'nope-"),
        (second["id"], {}, 409, "allocation_not_running", f"allocation '{second['id']}' is "),
        (first["id"], {"task": "db"}, 400, "invalid_field", "task: "),
        (first["id"], {"task": 3}, 400, "invalid_field", "task: "),
        (first["id"], {"task": ""}, 400, "invalid_field", "task: "),
    ]
    for alloc_id, body, status, code, starts in cases:
        before = commit_index(server)
        r = server.post(f"/v1/allocations/{alloc_id}/restart", body)
        assert_error(r, status, code)
        assert r.body["message"].startswith(starts), r.body
        assert commit_index(server) == before
        assert "restart_requested" not in server.get(f"/v1/allocations/{first['id']}").body


# --- who may ------------------------------------------------------------------------------


def _auth(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


def test_reading_tokens_may_do_none_of_it(server: Server, node: ActingNode) -> None:
    submitted(server, web("guarded", 1), running=1)
    (alloc,) = live(server, "guarded")
    put_policy(server, "ops-readers", {"jobs": "read", "allocations": "read"})
    put_policy(server, "ops-writers", {"jobs": "write", "allocations": "write"})
    reader = make_token(server, ["ops-readers"])["secret_id"]
    writer = make_token(server, ["ops-writers"])["secret_id"]
    calls = [
        ("/v1/jobs/guarded/scale", {"count": 2}),
        ("/v1/jobs/guarded/plan", web("guarded", 2)),
        (f"/v1/allocations/{alloc['id']}/restart", {}),
    ]
    for path, body in calls:
        assert_error(as_(server, reader, "POST", path, body), 403, "forbidden")
    for path, body in calls:
        r = as_(server, writer, "POST", path, body)
        assert r.status == 200, (path, r.body)
