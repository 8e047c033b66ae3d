"""A docker task's `pull` policy and `registry_auth` in the job spec: checked
with the field's path, stored only when they say something, and the
registry's password secret readable by the job's submitter."""

from __future__ import annotations

from typing import Any

import pytest

from domain.jobspec import JobSpecError, normalize_job
from domain.policy import Permissions, validate_rules

AUTH = {"username": "ci", "password_secret": "registry_pw"}


def task_of(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "t", "image": "127.0.0.1:5000/app:1"}
    if fields.get("driver") == "exec":
        base = {"name": "t", "command": ["id"]}
    job = normalize_job({"name": "j", "groups": [{"name": "g", "tasks": [{**base, **fields}]}]})
    return job["groups"][0]["tasks"][0]


def error_of(**fields: Any) -> JobSpecError:
    with pytest.raises(JobSpecError) as failed:
        task_of(**fields)
    return failed.value


def test_the_defaults_are_not_stored_so_older_jobs_stay_the_same() -> None:
    task = task_of()
    assert "pull" not in task and "registry_auth" not in task
    assert task_of(pull="missing") == task  # the default said out loud: the same job
    assert task_of(pull="always")["pull"] == "always"
    assert task_of(pull="never")["pull"] == "never"


def test_registry_auth_keeps_the_secrets_name_only() -> None:
    task = task_of(registry_auth=AUTH, pull="always")
    assert task["registry_auth"] == AUTH
    versioned = task_of(registry_auth={**AUTH, "password_secret": "registry_pw@3"})
    assert versioned["registry_auth"]["password_secret"] == "registry_pw@3"
    job = {"name": "j", "groups": [{"name": "g", "tasks": [dict(task)]}]}
    assert normalize_job(normalize_job(job)) == normalize_job(job)  # stable


def test_the_single_task_shorthand_takes_them_too() -> None:
    job = normalize_job({"name": "web", "image": "r/app:1", "pull": "never", "registry_auth": AUTH})
    task = job["groups"][0]["tasks"][0]
    assert task["pull"] == "never" and task["registry_auth"] == AUTH


@pytest.mark.parametrize(
    ("fields", "path", "says"),
    [
        ({"pull": "sometimes"}, "pull", "must be one of missing, always, never, got 'sometimes'"),
        ({"pull": True}, "pull", "must be one of missing, always, never"),
        ({"registry_auth": "ci:pw"}, "registry_auth", "must be an object"),
        ({"registry_auth": {"username": "ci"}}, "registry_auth.password_secret", "is required"),
        (
            {"registry_auth": {"password_secret": "registry_pw"}},
            "registry_auth.username",
            "is required",
        ),
        (
            {"registry_auth": {**AUTH, "password": "hunter2"}},
            "registry_auth.password",
            "a password is never part of a job",
        ),
        (
            {"registry_auth": {**AUTH, "password_secret": "no spaces"}},
            "registry_auth.password_secret",
            "invalid secret reference",
        ),
        (
            {"registry_auth": {**AUTH, "username": "a:b"}},
            "registry_auth.username",
            "without whitespace or ':'",
        ),
        ({"registry_auth": {**AUTH, "email": "x@y"}}, "registry_auth.email", "unknown field"),
        ({"driver": "exec", "pull": "always"}, "pull", "is used by the docker driver only"),
        ({"driver": "exec", "registry_auth": AUTH}, "registry_auth", "docker driver only"),
    ],
)
def test_bad_values_name_their_field(fields: dict[str, Any], path: str, says: str) -> None:
    error = error_of(**fields)
    assert error.path == f"groups[0].tasks[0].{path}"
    assert says in error.message


def test_a_password_given_inline_is_not_echoed() -> None:
    error = error_of(registry_auth={**AUTH, "password": "hunter2-secret"})
    assert "hunter2-secret" not in str(error)


def test_the_password_secret_must_be_readable_by_the_submitter() -> None:
    rules = validate_rules({"jobs": "write", "secrets": {"app_*": "read", "*": "list"}})
    perms = Permissions.compile([rules], management=False)
    job = normalize_job(
        {"name": "j", "image": "r/app:1", "registry_auth": {**AUTH, "password_secret": "app_pw"}}
    )
    assert perms.job_refusals(job) == []
    job = normalize_job({"name": "j", "image": "r/app:1", "registry_auth": AUTH})
    assert perms.job_refusals(job) == [
        "secret 'registry_pw' is not readable (groups[0].tasks[0].registry_auth.password_secret)"
    ]
