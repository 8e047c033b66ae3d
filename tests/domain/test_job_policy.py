"""What a job may ask of the nodes: the `jobs` rule's object form, its merge,
and the refusals a submission gets (each naming the field)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.job_policy import JobGrants
from domain.jobspec import normalize_job
from domain.policy import Permissions, PolicyError, validate_rules


def perms(*rule_sets: dict[str, Any], management: bool = False) -> Permissions:
    return Permissions.compile([validate_rules(r) for r in rule_sets], management=management)


def job(**task: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "t", "image": "busybox"}
    if task.get("driver") == "exec":
        base = {"name": "t", "command": ["id"]}
    return normalize_job({"name": "j", "groups": [{"name": "g", "tasks": [{**base, **task}]}]})


def test_the_object_form_is_checked_and_gets_its_defaults() -> None:
    assert validate_rules({"jobs": {}})["jobs"] == {
        "write": True,
        "drivers": ["docker"],
        "privileged": False,
        "host_volumes": [],
    }
    rule = validate_rules(
        {"jobs": {"drivers": ["exec", "docker", "exec"], "host_volumes": ["/srv/data/", "/srv"]}}
    )["jobs"]
    assert rule["drivers"] == ["docker", "exec"] and rule["host_volumes"] == ["/srv", "/srv/data"]
    assert validate_rules({"jobs": "write"})["jobs"] == "write"  # the string form stays
    for bad, says in (
        ({"write": "yes"}, "write and privileged must be true or false"),
        ({"privileged": 1}, "write and privileged must be true or false"),
        ({"drivers": ["qemu"]}, "rules.jobs.drivers must be a list of docker, exec"),
        ({"drivers": "exec"}, "rules.jobs.drivers must be a list of docker, exec"),
        ({"host_volumes": "/srv"}, "must be a list of absolute paths"),
        ({"host_volumes": ["srv"]}, "'srv' must be an absolute path"),
        ({"host_volumes": ["/srv/../etc"]}, "must not contain '.' or '..'"),
        ({"write": False, "drivers": ["exec"]}, "need write: true"),
        ({"root": True}, "unknown key 'root'"),
    ):
        with pytest.raises(PolicyError, match=says):
            validate_rules({"jobs": bad})


def test_jobs_write_is_docker_only_without_privilege() -> None:
    p = perms({"jobs": "write"})
    assert p.allows("jobs", "write")
    assert p.job_grants == JobGrants(frozenset({"docker"}))
    assert p.job_refusals(job()) == []
    assert p.job_refusals(job(driver="exec")) == [
        "the exec driver is not granted (groups[0].tasks[0].driver)"
    ]
    assert p.job_refusals(job(privileged=True)) == [
        "privileged is not granted (groups[0].tasks[0].privileged)"
    ]
    assert p.job_refusals(job(volumes=[{"source": "/etc", "target": "/etc"}])) == [
        "host path '/etc' is not granted (groups[0].tasks[0].volumes[0].source)"
    ]


def test_secrets_a_job_references_must_be_readable_by_its_submitter() -> None:
    p = perms({"jobs": "write", "secrets": {"app_*": "read", "*": "list", "app_root": "deny"}})
    ok = job(secrets={"A": "app_db", "B": "app_db@2"})
    assert p.job_refusals(ok) == []
    refused = job(secrets={"A": "app_db", "K": "cluster_key", "R": "app_root@1"})
    assert p.job_refusals(refused) == [
        "secret 'cluster_key' is not readable (groups[0].tasks[0].secrets.K)",
        "secret 'app_root' is not readable (groups[0].tasks[0].secrets.R)",
    ]


def test_granting_policies_add_up_and_deny_wins() -> None:
    exec_ok = {"jobs": {"drivers": ["exec"]}}
    mounts = {"jobs": {"host_volumes": ["/srv/data"], "privileged": True}}
    p = perms({"jobs": "write"}, exec_ok, mounts)
    assert p.job_grants.drivers == {"docker", "exec"} and p.job_grants.privileged
    assert p.job_refusals(job(driver="exec", user="root")) == []
    allowed = [{"source": "/srv/data", "target": "/a"}, {"source": "/srv/data/x", "target": "/b"}]
    assert p.job_refusals(job(privileged=True, volumes=allowed)) == []
    sibling = [{"source": "/srv/database", "target": "/a"}]  # a prefix, not a parent
    assert p.job_refusals(job(volumes=sibling)) == [
        "host path '/srv/database' is not granted (groups[0].tasks[0].volumes[0].source)"
    ]
    denied = perms(exec_ok, {"jobs": "deny"})
    assert not denied.allows("jobs", "write") and denied.job_grants == JobGrants()
    read_only = perms({"jobs": {"write": False}})
    assert read_only.allows("jobs", "read") and not read_only.allows("jobs", "write")
    assert read_only.job_grants == JobGrants()


def test_an_exec_user_other_than_nobody_needs_privileged() -> None:
    p = perms({"jobs": {"drivers": ["exec", "docker"]}})
    assert p.job_refusals(job(driver="exec")) == []
    assert p.job_refusals(job(driver="exec", user="root")) == [
        "exec user 'root' needs privileged (groups[0].tasks[0].user)"
    ]
    assert p.job_refusals(job(user="root")) == []  # a container's root is not the node's


def test_management_is_refused_nothing() -> None:
    everything = job(
        driver="docker",
        privileged=True,
        volumes=[{"source": "/", "target": "/host"}],
        secrets={"K": "anything"},
    )
    assert perms(management=True).job_refusals(everything) == []


tasks = st.fixed_dictionaries(
    {
        "driver": st.sampled_from(["docker", "exec"]),
        "privileged": st.booleans(),
        "user": st.sampled_from(["nobody", "root", "1000"]),
        "source": st.sampled_from(["/srv", "/srv/data", "/etc", "/var/log/app"]),
    }
)
grant_rules = st.fixed_dictionaries(
    {
        "drivers": st.lists(st.sampled_from(["docker", "exec"]), unique=True),
        "privileged": st.booleans(),
        "host_volumes": st.lists(st.sampled_from(["/", "/srv", "/var/log"]), unique=True),
    }
)


@given(tasks, grant_rules, grant_rules)
def test_more_grants_never_refuse_more(
    t: dict[str, Any], first: dict[str, Any], second: dict[str, Any]
) -> None:
    if t["driver"] == "exec":
        spec = job(driver="exec", user=t["user"])
    else:
        spec = job(privileged=t["privileged"], volumes=[{"source": t["source"], "target": "/m"}])
    alone = perms({"jobs": first}).job_refusals(spec)
    both = perms({"jobs": first}, {"jobs": second}).job_refusals(spec)
    assert set(both) <= set(alone)
    if not alone:
        assert not both
