"""A group's `update`: the deployment keys (strategy, progress_deadline,
auto_revert), their defaults said by absence, and the refusals."""

from __future__ import annotations

from typing import Any

import pytest

from domain.jobspec import JobSpecError, normalize_job, update_settings
from domain.jobspec.groups import canary_settings


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
        "auto_promote": False,
        "stagger": 0,
    }


def test_stagger_and_rainbow_settings() -> None:
    assert _update({"stagger": "5s"})["stagger"] == 5
    assert _update({"stagger": "0s"}).get("stagger") is None  # the default, said by absence
    rainbow = _update({"strategy": "rainbow", "drain_timeout": "2m"})
    # a whole new set that promotes itself (domain.scheduler): nothing to state
    assert "canary" not in rainbow and "auto_promote" not in rainbow
    assert _update(rainbow) == rainbow  # the stored form resubmits
    assert rainbow["drain_timeout"] == 120
    assert _update({"strategy": "rainbow"})["drain_timeout"] == 3600  # always stated


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
        ({"strategy": "canary", "canary": 2}, "groups[0].update.canary", "count (1)"),
        ({"strategy": "blue-green", "canary": 0}, "groups[0].update.canary", "at least 1"),
        ({"strategy": "rainbow", "canary": 1}, "groups[0].update.canary", "only applies"),
        ({"drain_timeout": "1m"}, "groups[0].update.drain_timeout", "rainbow"),
        ({"strategy": "sideways"}, "groups[0].update.strategy", ""),
        ({"stagger": "soon"}, "groups[0].update.stagger", ""),
    ],
)
def test_refusals_name_the_field(update: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(JobSpecError) as err:
        _update(update)
    assert err.value.path == path
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("strategy", "doc", "count", "settings"),
    [
        ("canary", {}, 3, {"canary": 1}),
        ("canary", {"canary": 2, "auto_promote": True}, 3, {"canary": 2, "auto_promote": True}),
        ("blue-green", {}, 3, {"canary": 3}),
        ("blue-green", {"auto_promote": False}, 0, {"canary": 0}),
        ("rolling", {}, 3, {}),
    ],
)
def test_canary_settings_state_the_canary_count(
    strategy: str, doc: dict[str, Any], count: int, settings: dict[str, Any]
) -> None:
    assert canary_settings(doc, strategy, count, "update") == settings


@pytest.mark.parametrize(
    ("strategy", "doc", "path", "words"),
    [
        ("canary", {"canary": 4}, "update.canary", "not be more than the group's count (3)"),
        ("canary", {"canary": 0}, "update.canary", "at least 1"),
        ("blue-green", {"canary": -1}, "update.canary", ">= 0"),
        ("canary", {"auto_promote": "yes"}, "update.auto_promote", "true or false"),
        ("rolling", {"canary": 1}, "update.canary", "only applies"),
        ("rolling", {"auto_promote": True}, "update.auto_promote", "only applies"),
    ],
)
def test_bad_canary_settings_name_their_field(
    strategy: str, doc: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(JobSpecError) as caught:
        canary_settings(doc, strategy, 3, "update")
    assert caught.value.path == path and words in caught.value.message


def test_canary_keys_on_a_rolling_group_are_refused_with_their_path() -> None:
    with pytest.raises(JobSpecError) as caught:
        normalize_job(_job({"canary": 1}))
    assert caught.value.path == "groups[0].update.canary"


def test_canary_strategies_state_their_canary_count() -> None:
    assert _update({"strategy": "canary"})["canary"] == 1
    job = _job({"strategy": "blue-green", "auto_promote": True})
    job["groups"][0]["count"] = 3
    normalized = normalize_job(job)
    update = normalized["groups"][0]["update"]
    assert update["strategy"] == "blue-green" and update["canary"] == 3
    assert update["auto_promote"] is True and normalize_job(normalized) == normalized
