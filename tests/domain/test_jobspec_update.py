"""A group's `update`: the deployment keys (strategy, progress_deadline,
auto_revert), their defaults said by absence, and the refusals."""

from __future__ import annotations

from typing import Any

import pytest

from domain.jobspec import JobSpecError, normalize_job, update_settings


def _job(update: dict[str, Any] | None) -> dict[str, Any]:
    group: dict[str, Any] = {"name": "web", "tasks": [{"name": "t", "image": "busybox"}]}
    if update is not None:
        group["update"] = update
    return {"name": "app", "groups": [group]}


def _update(update: dict[str, Any] | None) -> dict[str, Any]:
    return normalize_job(_job(update))["groups"][0]["update"]


def test_defaults_are_absent_so_old_jobs_keep_their_normalized_form() -> None:
    old = {"max_parallel": 1, "min_healthy_time": 10, "healthy_deadline": 300}
    assert _update(None) == old
    assert _update({"strategy": "rolling", "auto_revert": False, "progress_deadline": "10m"}) == old
    assert update_settings({"update": old}) == {
        **old,
        "strategy": "rolling",
        "progress_deadline": 600,
        "auto_revert": False,
    }


def test_set_keys_are_kept_and_normalizing_twice_changes_nothing() -> None:
    update = _update({"progress_deadline": "2m", "auto_revert": True, "healthy_deadline": "1m"})
    assert update == {
        "max_parallel": 1,
        "min_healthy_time": 10,
        "healthy_deadline": 60,
        "progress_deadline": 120,
        "auto_revert": True,
    }
    job = normalize_job(_job({"progress_deadline": "2m", "healthy_deadline": "1m"}))
    assert normalize_job(job) == job


def test_a_long_healthy_deadline_gets_a_longer_default_progress_deadline() -> None:
    settings = update_settings({"update": _update({"healthy_deadline": "15m"})})
    assert settings["progress_deadline"] == 900 + 600


@pytest.mark.parametrize(
    ("update", "path", "words"),
    [
        ({"progress_deadline": "5m"}, "groups[0].update.progress_deadline", "longer than"),
        (
            {"progress_deadline": "30s", "healthy_deadline": "1m"},
            "groups[0].update.progress_deadline",
            "longer than",
        ),
        ({"auto_revert": "yes"}, "groups[0].update.auto_revert", "true or false"),
        ({"strategy": "canary"}, "groups[0].update.strategy", "not supported yet"),
        ({"strategy": "blue-green"}, "groups[0].update.strategy", "not supported yet"),
        ({"strategy": "rainbow"}, "groups[0].update.strategy", "not supported yet"),
        ({"strategy": "sideways"}, "groups[0].update.strategy", ""),
        ({"stagger": "5s"}, "groups[0].update.stagger", ""),
    ],
)
def test_refusals_name_the_field(update: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(JobSpecError) as err:
        _update(update)
    assert err.value.path == path
    assert words in str(err.value)
