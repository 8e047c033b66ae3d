"""Followers: what a docker follower stores of an engine stream and where
it resumes (exactly after the last stored line)."""

from __future__ import annotations

from pathlib import Path

from agent.drivers.base import RUNNING, TaskState
from agent.logs.collector import LogCollector
from agent.logs.followers import DockerFollower
from agent.logs.lines import parse_docker_ts
from agent.logs.store import LogStore
from tests.agent.logs.support import texts


def test_docker_resume_keeps_lines_sharing_a_microsecond(tmp_path: Path) -> None:
    """Bursts of lines often share a timestamp: a resume (which replays from
    a second before the cursor) skips exactly what was stored already."""
    store = LogStore(tmp_path)
    collector = LogCollector(store, {})
    st = TaskState("a1", "main", "docker", "c1", RUNNING, job="j")
    follower = DockerFollower(collector, st)
    stamp = "2026-11-30T10:00:00.000001Z"
    frames = [f"{stamp} burst {i}\n".encode() for i in range(5)]
    cursor = follower._copy(iter(frames[:3]), "stdout", "main:stdout", (0, 0))
    assert cursor == (parse_docker_ts(stamp), 3)
    replay = [
        b"2026-11-30T09:59:59.9Z older\n",
        *frames,
        b"2026-11-30T10:00:01Z after\n2026-11-30T10:00:01Z partial",
    ]
    cursor = follower._copy(iter(replay), "stdout", "main:stdout", cursor)
    assert texts(store.tail("a1", None)) == [*(f"burst {i}" for i in range(5)), "after", "partial"]
    assert cursor == (parse_docker_ts("2026-11-30T10:00:01Z"), 2)
