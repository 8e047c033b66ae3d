"""Log lines: the timestamps of docker's log stream and of our records."""

from __future__ import annotations

from agent.logs.lines import format_ts, parse_docker_ts


def test_timestamps_round_trip() -> None:
    us = parse_docker_ts("2026-11-30T10:26:30.123456789Z")
    assert us is not None and format_ts(us) == "2026-11-30T10:26:30.123456Z"
    assert parse_docker_ts("2026-11-30T10:26:30Z") == us - 123456
    assert parse_docker_ts("2026-11-30T12:26:30.5+02:00") == us - 123456 + 500000
    assert parse_docker_ts("garbage") is None
