"""FSM: `job.scale` (a new version with one group's count changed) and
`alloc.restart` (a user's restart request, replicated for the node)."""

from __future__ import annotations

from typing import Any

import pytest

from domain.jobspec import normalize_job
from domain.jobspec.groups import MAX_COUNT
from raft.fsm_jobs import MAX_GROUP_COUNT
from tests.raft.event_log import cluster_with_job, cmd


def two_groups() -> dict[str, Any]:
    return normalize_job(
        {
            "name": "duo",
            "groups": [
                {"name": "api", "count": 2, "tasks": [{"name": "t", "image": "img:1"}]},
                {"name": "worker", "count": 1, "tasks": [{"name": "t", "image": "img:1"}]},
            ],
        }
    )


def test_the_fsm_bound_is_the_jobspec_bound() -> None:
    assert MAX_GROUP_COUNT == MAX_COUNT


def test_scale_is_a_new_version_with_only_that_count_changed() -> None:
    log = cluster_with_job()
    before = log.state.table("jobs")["web"]
    seen = log.index
    (result,) = log.apply(cmd("job.scale", name="web", group="web", count=5))
    assert result["ok"], result
    assert (result["group"], result["previous_count"], result["count"]) == ("web", 2, 5)
    after = log.state.table("jobs")["web"]
    assert after["version"] == before["version"] + 1
    assert after["job_modify_index"] == log.index
    assert after["groups"] == [dict(before["groups"][0], count=5)]
    assert {k: v for k, v in after.items() if k not in ("groups", "version")} == {
        k: v
        for k, v in before.items()
        if k not in ("groups", "version", "modify_index", "job_modify_index", "submit_time")
    } | {
        "modify_index": log.index,
        "job_modify_index": log.index,
        "submit_time": 1000,
    }
    # The old version is in the history; the running allocations moved in
    # place (a count-only change); the event says a new version was submitted.
    assert len(log.state.table("job_versions")["web"]) == 1
    allocs = log.state.table("allocations")
    assert {allocs[a]["job_version"] for a in ("a1", "a2")} == {after["version"]}
    assert "job.submitted" in log.types(after=seen)
    assert "web" in log.state.changed_jobs


@pytest.mark.parametrize(
    ("update", "before", "after", "canary"),
    [
        ({"strategy": "blue-green"}, 4, 2, 2),  # the whole set, as by default
        ({"strategy": "blue-green"}, 2, 5, 5),
        ({"strategy": "blue-green", "canary": 1}, 3, 6, 1),  # stated below the count: kept
        ({"strategy": "canary", "canary": 3}, 4, 2, 2),  # at most the count
        ({"strategy": "canary", "canary": 2}, 4, 0, 0),  # nothing runs, nothing to try
        ({"strategy": "canary"}, 0, 3, 1),  # stored as 0 while nothing ran
    ],
)
def test_a_scaled_canary_group_stays_a_valid_spec(
    update: dict[str, Any], before: int, after: int, canary: int
) -> None:
    log = cluster_with_job()
    job = normalize_job({"name": "bg", "image": "img:1", "count": before, "update": update})
    log.apply(cmd("job.upsert", job=job))
    (result,) = log.apply(cmd("job.scale", name="bg", count=after))
    assert result["ok"], result
    stored = log.state.table("jobs")["bg"]
    assert stored["groups"][0]["update"]["canary"] == canary
    server_owned = ("version", "create_index", "modify_index", "job_modify_index")
    resubmitted = {k: v for k, v in stored.items() if k not in server_owned}
    again = normalize_job({k: v for k, v in resubmitted.items() if k in job})
    assert again["groups"] == stored["groups"]


def test_scale_omits_the_group_of_a_single_group_job() -> None:
    log = cluster_with_job()
    (result,) = log.apply(cmd("job.scale", name="web", count=0))
    assert result["ok"] and result["group"] == "web"
    assert log.state.table("jobs")["web"]["groups"][0]["count"] == 0


@pytest.mark.parametrize(
    ("fields", "status", "code", "words"),
    [
        ({"name": "nope", "group": "web", "count": 1}, 404, "job_not_found", "nope"),
        ({"name": "web", "group": "db", "count": 1}, 400, "invalid_field", "group: "),
        ({"name": "web", "group": "web", "count": -1}, 400, "invalid_field", "count: "),
        ({"name": "web", "group": "web", "count": 100_001}, 400, "invalid_field", "count: "),
        ({"name": "web", "group": "web", "count": True}, 400, "invalid_field", "count: "),
        ({"name": "web", "group": "web"}, 400, "missing_field", "count: is required"),
        ({"name": "web", "group": "web", "count": 3, "cas": 1}, 409, "conflict", "expected 1"),
    ],
)
def test_scale_refusals_change_nothing(
    fields: dict[str, Any], status: int, code: str, words: str
) -> None:
    log = cluster_with_job()
    jobs_before = dict(log.state.table("jobs"))
    (result,) = log.apply(cmd("job.scale", **fields))
    assert not result["ok"]
    assert (result["status"], result["error"]) == (status, code)
    assert words in result["message"]
    assert log.state.table("jobs") == jobs_before


def test_scale_names_the_group_a_multi_group_job_needs() -> None:
    log = cluster_with_job()
    log.apply(cmd("job.upsert", job=two_groups()))
    (result,) = log.apply(cmd("job.scale", name="duo", count=3))
    assert (result["status"], result["error"]) == (400, "missing_field")
    assert result["message"] == "group: is required (the job's groups: api, worker)"
    (result,) = log.apply(cmd("job.scale", name="duo", group="worker", count=3))
    assert result["ok"]
    counts = {g["name"]: g["count"] for g in log.state.table("jobs")["duo"]["groups"]}
    assert counts == {"api": 2, "worker": 3}


def test_scale_with_the_current_index_passes_the_check() -> None:
    log = cluster_with_job()
    current = log.state.table("jobs")["web"]["job_modify_index"]
    (result,) = log.apply(cmd("job.scale", name="web", group="web", count=4, cas=current))
    assert result["ok"], result


def running(log: Any, alloc_id: str = "a1") -> None:
    node = log.state.table("allocations")[alloc_id]["node"]
    update = {"id": alloc_id, "status": "running"}
    (result,) = log.apply(cmd("alloc.update", node=node, updates=[update]))
    assert result["ok"]


def test_restart_records_the_request_with_its_index_and_an_event() -> None:
    log = cluster_with_job()
    running(log)
    (result,) = log.apply(cmd("alloc.restart", id="a1"))
    assert result["ok"], result
    doc = log.state.table("allocations")["a1"]
    assert doc["restart_requested"] == {"index": log.index, "task": None}
    assert doc["events"][-1]["type"] == "restart_requested"
    assert doc["events"][-1]["message"] == "restart requested by a user"
    assert result["allocation"] is doc
    (result,) = log.apply(cmd("alloc.restart", id="a1", task="web"))
    doc = log.state.table("allocations")["a1"]
    assert doc["restart_requested"] == {"index": log.index, "task": "web"}
    assert doc["events"][-1]["task"] == "web"


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"id": "zz"}, 404, "allocation_not_found"),
        ({"id": "a2"}, 409, "allocation_not_running"),  # pending
        ({"id": "a1", "task": "sidecar"}, 400, "invalid_field"),
    ],
)
def test_restart_refusals_change_nothing(fields: dict[str, Any], status: int, code: str) -> None:
    log = cluster_with_job()
    running(log)
    before = dict(log.state.table("allocations"))
    (result,) = log.apply(cmd("alloc.restart", **fields))
    assert (result["ok"], result["status"], result["error"]) == (False, status, code)
    assert log.state.table("allocations") == before


def test_a_stopped_allocation_cannot_be_restarted() -> None:
    log = cluster_with_job()
    running(log)
    log.apply(cmd("alloc.stop", id="a1"))
    (result,) = log.apply(cmd("alloc.restart", id="a1"))
    assert (result["status"], result["error"]) == (409, "allocation_not_running")
    assert "desired stop" in result["message"]


def test_the_node_reports_the_request_it_handled_and_never_goes_back() -> None:
    log = cluster_with_job()
    running(log)
    log.apply(cmd("alloc.restart", id="a1"))
    asked = log.index
    update = {"id": "a1", "restart_handled": asked}
    log.apply(cmd("alloc.update", node="n1", updates=[update]))
    assert log.state.table("allocations")["a1"]["restart_handled"] == asked
    stale = {"id": "a1", "restart_handled": asked - 1}
    log.apply(cmd("alloc.update", node="n1", updates=[stale]))
    assert log.state.table("allocations")["a1"]["restart_handled"] == asked
