"""The readable job diff (domain.job_diff): job, groups, tasks, flattened fields."""

from __future__ import annotations

from typing import Any

from domain.job_diff import flatten, job_diff
from domain.jobspec import normalize_job


def spec(**task: Any) -> dict[str, Any]:
    group_extra = task.pop("group", {})
    job_extra = task.pop("job", {})
    return normalize_job(
        {
            "name": "web",
            **job_extra,
            "groups": [
                {
                    "name": "app",
                    "count": 2,
                    **group_extra,
                    "tasks": [
                        {
                            "name": "web",
                            "image": "busybox:1",
                            "env": {"VERSION": "1"},
                            "ports": [{"name": "http", "to": 8080}],
                            **task,
                        }
                    ],
                }
            ],
        }
    )


def stored(doc: dict[str, Any], version: int = 3) -> dict[str, Any]:
    """As the FSM stores it: the server's fields added."""
    return dict(
        doc,
        version=version,
        create_index=5,
        modify_index=9,
        job_modify_index=9,
        submit_time=1,
        status="pending",
    )


def fields(diff: dict[str, Any]) -> dict[str, tuple[str, Any, Any]]:
    return {f["name"]: (f["type"], f["old"], f["new"]) for f in diff["fields"]}


def test_the_same_spec_is_no_change_whatever_the_server_added() -> None:
    diff = job_diff(stored(spec()), spec())
    assert diff["type"] == "none" and diff["fields"] == []
    (group,) = diff["groups"]
    assert (group["name"], group["type"], group["fields"]) == ("app", "none", [])
    assert [(t["name"], t["type"], t["fields"]) for t in group["tasks"]] == [("web", "none", [])]


def test_an_image_change_edits_the_task_and_its_group() -> None:
    diff = job_diff(stored(spec()), spec(image="busybox:2"))
    assert diff["type"] == "edited" and diff["fields"] == []
    (group,) = diff["groups"]
    assert group["type"] == "edited" and group["fields"] == []
    (task,) = group["tasks"]
    assert task["type"] == "edited"
    assert fields(task) == {"image": ("edited", "busybox:1", "busybox:2")}


def test_nested_values_become_paths() -> None:
    new = spec(env={"VERSION": "2", "MODE": "fast"}, ports=[{"name": "http", "to": 9090}])
    (task,) = job_diff(stored(spec()), new)["groups"][0]["tasks"]
    assert fields(task) == {
        "env.MODE": ("added", None, "fast"),
        "env.VERSION": ("edited", "1", "2"),
        "ports[http].to": ("edited", 8080, 9090),
    }


def test_a_count_change_is_a_group_field() -> None:
    diff = job_diff(stored(spec()), spec(group={"count": 5}))
    (group,) = diff["groups"]
    assert fields(group) == {"count": ("edited", 2, 5)}
    assert group["tasks"][0]["type"] == "none"


def test_job_fields_constraints_by_position_and_command_as_one_value() -> None:
    old = spec(command=["sh", "-c", "a"])
    new = spec(
        command=["sh", "-c", "b"],
        job={
            "meta": {"owner": "ops"},
            "priority": 70,
            "constraints": [{"attribute": "node.name", "operator": "=", "value": "x"}],
        },
    )
    diff = job_diff(stored(old), new)
    assert fields(diff) == {
        "constraints[0].attribute": ("added", None, "node.name"),
        "constraints[0].operator": ("added", None, "="),
        "constraints[0].value": ("added", None, "x"),
        "meta.owner": ("added", None, "ops"),
        "priority": ("edited", 50, 70),
    }
    task = diff["groups"][0]["tasks"][0]
    assert fields(task)["command"] == ("edited", ["sh", "-c", "a"], ["sh", "-c", "b"])


def test_groups_and_tasks_added_and_deleted() -> None:
    old = stored(spec())
    new = normalize_job(
        {
            "name": "web",
            "groups": [
                {"name": "worker", "tasks": [{"name": "w", "image": "img:1"}]},
            ],
        }
    )
    diff = job_diff(old, new)
    assert [(g["name"], g["type"]) for g in diff["groups"]] == [
        ("worker", "added"),
        ("app", "deleted"),
    ]
    added, deleted = diff["groups"]
    assert fields(added)["count"] == ("added", None, 1)
    assert fields(added["tasks"][0])["image"] == ("added", None, "img:1")
    assert fields(deleted)["count"] == ("deleted", 2, None)
    assert deleted["tasks"][0]["type"] == "deleted"


def test_a_new_job_and_a_deleted_one() -> None:
    created = job_diff(None, spec())
    assert created["type"] == "added" and created["groups"][0]["type"] == "added"
    assert fields(created)["priority"] == ("added", None, 50)
    assert "name" not in fields(created)  # the diff's own name says it
    gone = job_diff(stored(spec()), None)
    assert gone["type"] == "deleted" and gone["groups"][0]["tasks"][0]["type"] == "deleted"


def test_flatten_drops_empty_values_and_keys_named_items() -> None:
    assert flatten({"a": None, "b": {}, "c": [], "d": {"e": 1}}) == {"d.e": 1}
    assert flatten({"p": [{"name": "x", "to": 1}, {"name": "y"}]}) == {"p[x].to": 1, "p[y]": "y"}
    assert flatten({"p": [{"name": "x"}, {"name": "x"}]}) == {"p[0].name": "x", "p[1].name": "x"}
