"""Job spec validation and normalization (pure)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.jobspec import (
    JobSpecError,
    group_resources,
    normalize_job,
    parse_duration,
    parse_secret_ref,
)

FULL = {
    "name": "web",
    "type": "service",
    "groups": [
        {
            "name": "app",
            "count": 3,
            "constraints": [{"attribute": "node.name", "operator": "!=", "value": "server-3"}],
            "update": {"max_parallel": 1, "min_healthy_time": "10s", "healthy_deadline": "5m"},
            "restart": {"attempts": 3, "interval": "5m", "delay": "5s", "mode": "fail"},
            "tasks": [
                {
                    "name": "web",
                    "driver": "docker",
                    "image": "nginx:1.27",
                    "command": ["nginx", "-g", "daemon off;"],
                    "env": {"LOG_LEVEL": "info"},
                    "secrets": {"DB_PASSWORD": "db_password"},
                    "resources": {"cpu": 500, "memory": 256},
                    "ports": [{"name": "http", "to": 80}],
                    "check": {
                        "type": "http",
                        "port": "http",
                        "path": "/health",
                        "interval": "5s",
                        "timeout": "2s",
                    },
                }
            ],
        }
    ],
}


def error_of(doc: Any) -> JobSpecError:
    with pytest.raises(JobSpecError) as info:
        normalize_job(doc)
    return info.value


def test_full_form_from_the_issue() -> None:
    job = normalize_job(FULL)
    group = job["groups"][0]
    task = group["tasks"][0]
    assert job["name"] == "web" and job["type"] == "service"
    assert group["count"] == 3
    assert group["update"] == {"max_parallel": 1, "min_healthy_time": 10, "healthy_deadline": 300}
    assert group["restart"] == {"attempts": 3, "interval": 300, "delay": 5, "mode": "fail"}
    assert group["constraints"] == [
        {"attribute": "node.name", "operator": "!=", "value": "server-3"}
    ]
    assert task["command"] == ["nginx", "-g", "daemon off;"]
    assert task["resources"] == {"cpu": 500, "memory": 256}
    assert task["ports"] == [{"name": "http", "to": 80, "static": None}]
    assert task["check"] == {
        "type": "http",
        "port": "http",
        "path": "/health",
        "method": "GET",
        "interval": 5,
        "timeout": 2,
    }
    assert task["secrets"] == {"DB_PASSWORD": "db_password"}
    assert group_resources(group) == (500, 256)


def test_input_is_not_mutated_and_result_is_json() -> None:
    doc = copy.deepcopy(FULL)
    job = normalize_job(doc)
    assert doc == FULL
    assert json.loads(json.dumps(job)) == job


def test_defaults_as_nomad() -> None:
    job = normalize_job(
        {"name": "api", "groups": [{"name": "g", "tasks": [{"name": "t", "image": "x"}]}]}
    )
    group = job["groups"][0]
    task = group["tasks"][0]
    assert job["type"] == "service" and job["priority"] == 50
    assert group["count"] == 1
    assert task["resources"] == {"cpu": 100, "memory": 128}
    assert group["restart"] == {"attempts": 3, "interval": 300, "delay": 5, "mode": "fail"}
    assert group["update"] == {"max_parallel": 1, "min_healthy_time": 10, "healthy_deadline": 300}
    assert task["driver"] == "docker" and task["kill_timeout"] == 5
    assert task["env"] == {} and task["ports"] == [] and task["check"] is None


def test_shorthand_becomes_one_group_one_task() -> None:
    job = normalize_job(
        {
            "name": "site",
            "image": "nginx:1.27",
            "count": 2,
            "ports": [{"name": "http", "to": 80}],
            "env": {"A": "1"},
            "constraints": [{"attribute": "node.label.zone", "value": "a"}],
            "restart": {"mode": "delay"},
        }
    )
    assert [g["name"] for g in job["groups"]] == ["site"]
    group = job["groups"][0]
    assert group["count"] == 2 and group["restart"]["mode"] == "delay"
    assert [t["name"] for t in group["tasks"]] == ["site"]
    assert group["tasks"][0]["image"] == "nginx:1.27"
    assert job["constraints"] == [{"attribute": "node.label.zone", "operator": "=", "value": "a"}]


def test_shorthand_errors_name_the_field_as_written() -> None:
    err = error_of({"name": "site", "image": "x", "resources": {"memory": "lots"}})
    assert err.path == "resources.memory"
    err = error_of({"name": "site", "image": "x", "count": -1})
    assert err.path == "count"


def test_shorthand_and_groups_do_not_mix() -> None:
    err = error_of({"name": "site", "image": "x", "groups": []})
    assert err.path == "image"


def test_normalize_is_idempotent_and_drops_server_fields() -> None:
    job = normalize_job(FULL)
    stored = dict(job, version=4, status="running", create_index=3, modify_index=9)
    assert normalize_job(stored) == job


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (
            lambda d: d["groups"][0]["tasks"][0]["resources"].update(memory="256MB"),
            "groups[0].tasks[0].resources.memory",
        ),
        (
            lambda d: d["groups"][0]["tasks"][0]["resources"].update(memory=4),
            "groups[0].tasks[0].resources.memory",
        ),
        (
            lambda d: d["groups"][0]["tasks"][0]["resources"].update(cpu=0),
            "groups[0].tasks[0].resources.cpu",
        ),
        (lambda d: d["groups"][0]["tasks"][0].pop("image"), "groups[0].tasks[0].image"),
        (lambda d: d["groups"][0]["tasks"][0].update(driver="qemu"), "groups[0].tasks[0].driver"),
        (lambda d: d["groups"][0]["tasks"][0].update(imagee="x"), "groups[0].tasks[0].imagee"),
        (lambda d: d["groups"][0].update(count=1.5), "groups[0].count"),
        (lambda d: d["groups"][0].update(count=True), "groups[0].count"),
        (lambda d: d["groups"][0].update(name="App"), "groups[0].name"),
        (
            lambda d: d["groups"][0]["update"].update(min_healthy_time="ten"),
            "groups[0].update.min_healthy_time",
        ),
        (
            lambda d: d["groups"][0]["update"].update(healthy_deadline="5s"),
            "groups[0].update.healthy_deadline",
        ),
        (lambda d: d["groups"][0]["restart"].update(mode="never"), "groups[0].restart.mode"),
        (lambda d: d["groups"][0]["restart"].update(attempts=-1), "groups[0].restart.attempts"),
        (
            lambda d: d["groups"][0]["constraints"][0].update(operator="~"),
            "groups[0].constraints[0].operator",
        ),
        (
            lambda d: d["groups"][0]["constraints"][0].update(attribute="cpu.arch"),
            "groups[0].constraints[0].attribute",
        ),
        (
            lambda d: d["groups"][0]["constraints"][0].update(operator="regexp", value="("),
            "groups[0].constraints[0].value",
        ),
        (lambda d: d["groups"][0]["constraints"][0].pop("value"), "groups[0].constraints[0].value"),
        (
            lambda d: d["groups"][0]["tasks"][0]["ports"][0].update(to=70000),
            "groups[0].tasks[0].ports[0].to",
        ),
        (
            lambda d: d["groups"][0]["tasks"][0]["ports"].append({"name": "http"}),
            "groups[0].tasks[0].ports[1].name",
        ),
        (
            lambda d: d["groups"][0]["tasks"][0]["check"].update(port="admin"),
            "groups[0].tasks[0].check.port",
        ),
        (
            lambda d: d["groups"][0]["tasks"][0]["check"].update(type="grpc"),
            "groups[0].tasks[0].check.type",
        ),
        (
            lambda d: d["groups"][0]["tasks"][0]["check"].update(path="health"),
            "groups[0].tasks[0].check.path",
        ),
        (
            lambda d: d["groups"][0]["tasks"][0]["env"].update({"1BAD": "x"}),
            "groups[0].tasks[0].env.1BAD",
        ),
        (lambda d: d["groups"][0]["tasks"][0]["env"].update(X=["a"]), "groups[0].tasks[0].env.X"),
        (
            lambda d: d["groups"][0]["tasks"][0]["secrets"].update(DB_PASSWORD="bad ref"),
            "groups[0].tasks[0].secrets.DB_PASSWORD",
        ),
        (
            lambda d: d["groups"][0]["tasks"][0]["secrets"].update(LOG_LEVEL="x"),
            "groups[0].tasks[0].secrets.LOG_LEVEL",
        ),
        (lambda d: d["groups"][0]["tasks"][0].update(command=[]), "groups[0].tasks[0].command"),
        (
            lambda d: d["groups"][0]["tasks"][0].update(command=["ok", 3]),
            "groups[0].tasks[0].command[1]",
        ),
        (
            lambda d: d["groups"][0]["tasks"].append(dict(d["groups"][0]["tasks"][0])),
            "groups[0].tasks[1].name",
        ),
        (lambda d: d["groups"].append(copy.deepcopy(d["groups"][0])), "groups[1].name"),
        (lambda d: d["groups"][0].update(tasks=[]), "groups[0].tasks"),
        (lambda d: d.update(groups={}), "groups"),
        (lambda d: d.update(type="system"), "type"),
        (lambda d: d.update(name="a" * 64), "name"),
        (lambda d: d.update(name="-web"), "name"),
        (lambda d: d.pop("name"), "name"),
        (lambda d: d["groups"][0]["tasks"][0].update(user="Root!"), "groups[0].tasks[0].user"),
        (
            lambda d: d["groups"][0]["tasks"][0].update(privileged="yes"),
            "groups[0].tasks[0].privileged",
        ),
        (
            lambda d: d["groups"][0]["tasks"][0].update(volumes=[{"source": "/srv"}]),
            "groups[0].tasks[0].volumes[0].target",
        ),
        (
            lambda d: d["groups"][0]["tasks"][0].update(
                volumes=[{"source": "srv", "target": "/srv"}]
            ),
            "groups[0].tasks[0].volumes[0].source",
        ),
        (
            lambda d: d["groups"][0]["tasks"][0].update(
                volumes=[{"source": "/srv/../etc", "target": "/srv"}]
            ),
            "groups[0].tasks[0].volumes[0].source",
        ),
        (
            lambda d: d["groups"][0]["tasks"][0].update(
                volumes=[{"source": "/a", "target": "/x"}, {"source": "/b", "target": "/x/"}]
            ),
            "groups[0].tasks[0].volumes[1].target",
        ),
        (
            lambda d: d["groups"][0]["tasks"][0].update(
                volumes=[{"source": "/a", "target": "/x", "read_only": "no"}]
            ),
            "groups[0].tasks[0].volumes[0].read_only",
        ),
    ],
)
def test_errors_carry_the_path(mutate: Any, path: str) -> None:
    doc = copy.deepcopy(FULL)
    mutate(doc)
    err = error_of(doc)
    assert err.path == path, (err.path, err.message)
    assert err.message and path in str(err)


def test_exec_driver_needs_a_command_and_no_image() -> None:
    base = {"name": "t", "driver": "exec", "command": ["/bin/sleep", "10"]}
    job = normalize_job({"name": "j", "groups": [{"name": "g", "tasks": [base]}]})
    assert job["groups"][0]["tasks"][0]["image"] is None
    err = error_of(
        {"name": "j", "groups": [{"name": "g", "tasks": [{"name": "t", "driver": "exec"}]}]}
    )
    assert err.path == "groups[0].tasks[0].command"
    err = error_of({"name": "j", "groups": [{"name": "g", "tasks": [dict(base, image="busybox")]}]})
    assert err.path == "groups[0].tasks[0].image"


def test_what_a_task_asks_of_the_node() -> None:
    """exec tasks run as nobody unless they say otherwise; privileged and
    host volumes are docker's, off unless asked for."""
    exec_task = {"name": "t", "driver": "exec", "command": ["id"]}
    task = normalize_job({"name": "j", "groups": [{"name": "g", "tasks": [exec_task]}]})
    (t,) = task["groups"][0]["tasks"]
    assert (t["user"], t["privileged"], t["volumes"]) == ("nobody", False, [])
    (t,) = normalize_job({"name": "j", "driver": "exec", "command": "id", "user": "1000"})[
        "groups"
    ][0]["tasks"]
    assert t["user"] == "1000"
    docker = normalize_job(
        {
            "name": "j",
            "image": "busybox",
            "privileged": True,
            "volumes": [{"source": "//srv/data/", "target": "/data", "read_only": False}],
        }
    )
    (t,) = docker["groups"][0]["tasks"]
    assert (t["user"], t["privileged"]) == (None, True)
    assert t["volumes"] == [{"source": "/srv/data", "target": "/data", "read_only": False}]
    assert normalize_job(docker) == docker
    for field, value in (("privileged", True), ("volumes", [{"source": "/a", "target": "/b"}])):
        bad = dict(exec_task, **{field: value})
        err = error_of({"name": "j", "groups": [{"name": "g", "tasks": [bad]}]})
        assert err.path == f"groups[0].tasks[0].{field}"
        assert err.message == "is used by the docker driver only"


def test_string_command_is_split_like_a_shell() -> None:
    job = normalize_job({"name": "j", "image": "x", "command": "nginx -g 'daemon off;'"})
    assert job["groups"][0]["tasks"][0]["command"] == ["nginx", "-g", "daemon off;"]


def test_command_check_and_tcp_check() -> None:
    job = normalize_job(
        {
            "name": "j",
            "image": "x",
            "ports": [{"name": "db", "static": 5432}],
            "check": {"type": "tcp", "port": "db"},
        }
    )
    check = job["groups"][0]["tasks"][0]["check"]
    assert check == {"type": "tcp", "port": "db", "interval": 10, "timeout": 2}
    job = normalize_job(
        {"name": "j", "image": "x", "check": {"type": "command", "command": "true"}}
    )
    assert job["groups"][0]["tasks"][0]["check"]["command"] == ["true"]
    assert (
        error_of({"name": "j", "image": "x", "check": {"type": "command"}}).path == "check.command"
    )


def test_static_ports_unique_in_a_group() -> None:
    doc = {
        "name": "j",
        "groups": [
            {
                "name": "g",
                "tasks": [
                    {"name": "a", "image": "x", "ports": [{"name": "p1", "static": 80}]},
                    {"name": "b", "image": "x", "ports": [{"name": "p2", "static": 80}]},
                ],
            }
        ],
    }
    assert error_of(doc).path == "groups[0].tasks[1].ports[0].static"


def test_constraint_spellings_are_normalized() -> None:
    job = normalize_job(
        {
            "name": "j",
            "image": "x",
            "constraints": [
                {"attribute": "${node.unique.name}", "operator": "==", "value": "n1"},
                {"attribute": "${meta.zone}", "operator": "not", "value": "c"},
                {"attribute": "node.label.tags", "operator": "set_contains", "value": "a,b"},
                {"attribute": "node.label.gpu", "operator": "is_set"},
                {"operator": "distinct_hosts", "value": True},
                {"attribute": "node.attr.cores", "operator": ">=", "value": 4},
            ],
        }
    )
    assert job["constraints"] == [
        {"attribute": "node.name", "operator": "=", "value": "n1"},
        {"attribute": "node.label.zone", "operator": "!=", "value": "c"},
        {"attribute": "node.label.tags", "operator": "set_contains", "value": "a,b"},
        {"attribute": "node.label.gpu", "operator": "is_set", "value": ""},
        {"attribute": "", "operator": "distinct_hosts", "value": ""},
        {"attribute": "node.attr.cores", "operator": ">=", "value": "4"},
    ]


def test_batch_type_and_env_scalars() -> None:
    job = normalize_job(
        {"name": "once", "type": "batch", "image": "x", "env": {"N": 3, "ON": True, "F": 1.5}}
    )
    assert job["type"] == "batch"
    assert job["groups"][0]["tasks"][0]["env"] == {"N": "3", "ON": "true", "F": "1.5"}


def test_reserved_labels() -> None:
    err = error_of({"name": "j", "image": "x", "labels": {"heroctl.job": "other"}})
    assert err.path == "labels.heroctl.job"


def test_not_an_object() -> None:
    assert error_of([1, 2]).path == ""
    assert error_of({"name": "j", "groups": {"name": "g"}}).path == "groups"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2m30s", 150),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        ("0s", 0),
        ("1d", 86400),
        (7, 7),
        (2.5, 2.5),
        ("15", 15),
        (" 10S ", 10),
    ],
)
def test_parse_duration(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "ten", "10x", "s", "-5s", "5m10", True, None, [], -1])
def test_parse_duration_rejects(bad: Any) -> None:
    with pytest.raises(JobSpecError):
        parse_duration(bad, "x")


def test_secret_refs() -> None:
    assert parse_secret_ref("db_password") == ("db_password", None)
    assert parse_secret_ref("db_password@3") == ("db_password", 3)
    with pytest.raises(JobSpecError):
        parse_secret_ref("db password")


# --- properties -------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)
durations = st.one_of(
    st.integers(0, 10_000),
    st.builds(lambda n, u: f"{n}{u}", st.integers(0, 500), st.sampled_from(["s", "m", "h"])),
)


@st.composite
def job_docs(draw: st.DrawFn) -> dict[str, Any]:
    group_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    groups = []
    for gname in group_names:
        task_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
        tasks = []
        for tname in task_names:
            task: dict[str, Any] = {"name": tname, "image": "busybox"}
            if draw(st.booleans()):
                task["resources"] = {
                    "cpu": draw(st.integers(1, 64_000)),
                    "memory": draw(st.integers(10, 256_000)),
                }
            if draw(st.booleans()):
                task["env"] = draw(
                    st.dictionaries(
                        st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True),
                        st.text(max_size=10),
                        max_size=3,
                    )
                )
            if draw(st.booleans()):
                task["privileged"] = draw(st.booleans())
                task["volumes"] = [
                    {"source": "/" + draw(names), "target": f"/mnt/{i}"}
                    for i in range(draw(st.integers(0, 2)))
                ]
            tasks.append(task)
        group: dict[str, Any] = {"name": gname, "tasks": tasks, "count": draw(st.integers(0, 50))}
        if draw(st.booleans()):
            mh = draw(st.integers(0, 100))
            group["update"] = {
                "max_parallel": draw(st.integers(0, 5)),
                "min_healthy_time": f"{mh}s",
                "healthy_deadline": mh + draw(st.integers(1, 1000)),
            }
        if draw(st.booleans()):
            group["restart"] = {
                "attempts": draw(st.integers(0, 10)),
                "delay": draw(durations),
                "mode": draw(st.sampled_from(["fail", "delay"])),
            }
        groups.append(group)
    return {
        "name": draw(names),
        "type": draw(st.sampled_from(["service", "batch"])),
        "groups": groups,
    }


@settings(max_examples=150, deadline=None)
@given(job_docs())
def test_property_normalize_idempotent(doc: dict[str, Any]) -> None:
    job = normalize_job(doc)
    assert normalize_job(job) == job
    assert json.loads(json.dumps(job)) == job
    for group in job["groups"]:
        for task in group["tasks"]:
            assert task["resources"]["cpu"] >= 1 and task["resources"]["memory"] >= 10


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(["name", "groups", "tasks", "image", "count", "x"]),
                children,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_property_garbage_never_crashes(doc: Any) -> None:
    try:
        normalize_job(doc)
    except JobSpecError as err:
        assert isinstance(err.path, str) and err.message


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"name": "web\n", "image": "busybox"}, "name"),
        ({"name": "web", "image": "busybox", "env": {"A\n": "1"}}, "env"),
        (
            {
                "name": "web",
                "groups": [
                    {
                        "name": "app",
                        "ingress": [{"host": "a.test", "path": "/a\n", "port": "http"}],
                        "tasks": [{"name": "t", "image": "busybox", "ports": [{"name": "http"}]}],
                    }
                ],
            },
            "ingress[0].path",
        ),
    ],
)
def test_a_trailing_newline_is_no_valid_name(doc: dict, path: str) -> None:
    """`$` in a pattern also matches before a final newline: names are matched whole."""
    with pytest.raises(JobSpecError) as err:
        normalize_job(doc)
    assert path in err.value.path
