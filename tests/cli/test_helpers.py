"""Pure helpers of the CLI: job file parsing, formatting, token lookup."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from cli.cmd_cluster import status_rows
from cli.cmd_deployment import draining_rows
from cli.cmd_job import SpecError, load_spec, version_rows
from cli.common import Settings, error_text
from cli.credentials import CredentialsError, credentials_path, read_saved_token
from cli.output import cell_text, changed_keys, fmt_age, fmt_duration_ms, fmt_time
from client import ApiClientError, ApiUnreachable


def test_load_spec_json_yaml_and_errors() -> None:
    assert load_spec('{"name": "a"}', "a.json") == {"name": "a"}
    assert load_spec("name: a\nwhen: 2024-05-01\n", "a.yaml") == {"name": "a", "when": "2024-05-01"}
    with pytest.raises(SpecError, match="a.json is not valid JSON"):
        load_spec("name: a", "a.json")
    with pytest.raises(SpecError, match="neither valid JSON nor valid YAML"):
        load_spec("a: [", "a.yml")
    with pytest.raises(SpecError, match="must contain one job"):
        load_spec("- a\n- b\n", "stdin")
    with pytest.raises(SpecError, match="must contain one job"):
        load_spec("", "stdin")


def test_time_formatters() -> None:
    assert fmt_time(None) == "-"
    assert fmt_time(1_700_000_000_000) == "2023-11-14 22:13:20 UTC"
    now = 1_700_000_000_000
    assert fmt_age(now - 5_000, now) == "5s ago"
    assert fmt_age(now - 125_000, now) == "2m ago"
    assert fmt_age(now - 3 * 86_400_000, now) == "3d ago"
    assert fmt_age(now + 10_000, now) == "0s ago"  # clock skew never goes negative
    assert [fmt_duration_ms(v) for v in (None, -1, 12, 2500, 190_000)] == [
        "-",
        "-",
        "12ms",
        "2.5s",
        "3m10s",
    ]


def test_cell_text() -> None:
    assert [cell_text(v) for v in (None, "", True, False, 3, ["a", None])] == [
        "-",
        "-",
        "yes",
        "no",
        "3",
        "a, -",
    ]
    assert cell_text({"a": 1}) == '{"a":1}'


def test_changed_keys_and_version_rows() -> None:
    assert changed_keys(None, {"a": 1}) == []
    assert changed_keys({"a": 1, "b": 2, "v": 0}, {"a": 1, "c": 3, "v": 1}, ignore=["v"]) == [
        "b",
        "c",
    ]
    versions = [
        {"name": "w", "version": 2, "image": "x:2", "job_modify_index": 9, "status": "pending"},
        {"name": "w", "version": 1, "image": "x:1", "job_modify_index": 5, "status": "pending"},
        {"name": "w", "version": 0, "image": "x:1", "job_modify_index": 3, "status": "pending"},
    ]
    assert [row[-1] for row in version_rows(versions)] == ["image", "(none)", "-"]


def test_status_rows_without_a_leader() -> None:
    rows = dict(status_rows({"node": "s1", "raft_address": "h:1", "is_leader": False}))
    assert rows["Leader"] == "none known"
    assert rows["This server"] == "s1 (h:1), follower"
    assert rows["Health"].startswith("UNHEALTHY")


def test_error_text() -> None:
    assert error_text(ApiClientError(404, "job_not_found", "no job", "req_9")) == (
        "no job (job_not_found, request req_9)"
    )
    assert error_text(ApiClientError(500, "internal", "boom")) == "boom (internal)"
    text = error_text(ApiUnreachable("http://h:1", "connection refused"))
    assert text.startswith("could not reach the HeroCtl API at http://h:1: connection refused")


def test_token_falls_back_to_the_credentials_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = credentials_path()
    assert path == tmp_path / "heroctl" / "credentials.json"
    assert Settings().resolved_token() is None  # no file: no token

    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"token": "saved"}))
    assert Settings().resolved_token() == "saved"
    assert Settings(token="explicit").resolved_token() == "explicit"

    path.write_text("{not json")
    with pytest.raises(CredentialsError, match="not valid JSON"):
        read_saved_token(path)
    with pytest.raises(click.ClickException, match="not valid JSON"):
        Settings().resolved_token()


def test_deployment_status_lists_a_rainbows_older_versions_draining() -> None:
    doc = {
        "groups": {
            "web": {
                "draining": {
                    "10": {"allocations": 1, "connections": 0},
                    "9": {"allocations": 2, "connections": 5},
                }
            },
            "api": {},
        }
    }
    assert draining_rows(doc) == [("web", 9, 2, 5), ("web", 10, 1, 0)]
