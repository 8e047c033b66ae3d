"""`--wait` on `heroctl job list` and `heroctl secret list` (blocking queries).

Against one real heroctld (`module_single`, no agent: a submitted job stays
pending and its list entry does not move on its own). A change is made only
once the CLI has read the list and sent its first blocking query (an index
given): `parked` spies on `ApiClient.blocking_get` to say when. Waits have
deadlines; nothing sleeps.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result

from client import ApiClient
from tests.cli.results import ok
from tests.support.cluster import Cluster, Server

DEADLINE = 30.0  # seconds: the longest any step here may take


@pytest.fixture(scope="module")
def server(module_single: Cluster) -> Server:
    return module_single.servers[0]


@pytest.fixture
def parked(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once the CLI sends a blocking query (after its first, plain read)."""
    event = threading.Event()
    original = ApiClient.blocking_get

    async def spy(self: ApiClient, path: str, params: Any = None, **kw: Any) -> tuple[Any, int]:
        if kw.get("index") is not None:
            event.set()
        return await original(self, path, params, **kw)

    monkeypatch.setattr(ApiClient, "blocking_get", spy)
    return event


class ChangeWhenParked:
    """In a thread: once the CLI is parked on its blocking query, run `change` once."""

    def __init__(self, parked: threading.Event, change: Callable[[], None]) -> None:
        self.errors: list[BaseException | str] = []

        def run() -> None:
            if not parked.wait(DEADLINE):
                self.errors.append("the CLI never sent a blocking query")
                return
            try:
                change()
            except BaseException as e:  # noqa: BLE001 - reported by the test
                self.errors.append(e)

        self.thread = threading.Thread(target=run, daemon=True)

    def __enter__(self) -> ChangeWhenParked:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "the change never finished"
        assert not self.errors, self.errors


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def submit_job(server: Server, name: str) -> None:
    spec = {
        "name": name,
        "type": "service",
        "groups": [{"name": "app", "count": 1, "tasks": [{"name": "t", "image": "nginx:1.27"}]}],
    }
    r = server.post("/v1/jobs", spec)
    assert r.status in (200, 201), (r.status, r.body)


def put_secret(server: Server, name: str) -> None:
    r = server.post("/v1/secrets", {"name": name, "value": "v"})
    assert r.status in (200, 201), (r.status, r.body)


def test_job_list_wait_prints_once_a_job_is_added(
    heroctl: Callable[..., Result], server: Server, parked: threading.Event
) -> None:
    name = unique("wait-job")
    assert name not in {j["name"] for j in server.get("/v1/jobs").body}
    started = time.monotonic()
    with ChangeWhenParked(parked, lambda: submit_job(server, name)):
        result = heroctl("job", "list", "--wait", f"{int(DEADLINE)}s", "--json")
    assert name in {j["name"] for j in json.loads(ok(result))}
    assert result.stderr == ""
    assert time.monotonic() - started < DEADLINE

    # The table form waits the same way.
    other = unique("wait-job")
    parked.clear()
    with ChangeWhenParked(parked, lambda: submit_job(server, other)):
        table = ok(heroctl("job", "list", "--wait", f"{int(DEADLINE)}s"))
    assert table.splitlines()[0].split()[:3] == ["NAME", "TYPE", "STATUS"]
    assert any(line.split()[0] == other for line in table.splitlines()[1:])


def test_job_list_wait_without_change_prints_the_same_list(
    heroctl: Callable[..., Result], server: Server, parked: threading.Event
) -> None:
    submit_job(server, unique("quiet-job"))  # the list is not empty
    before = server.get("/v1/jobs").body
    started = time.monotonic()
    result = heroctl("job", "list", "--wait", "1s", "--json")
    assert time.monotonic() - started >= 1.0
    assert json.loads(ok(result)) == before
    assert result.stderr == "No change within 1s.\n"
    assert parked.is_set()  # it did wait with blocking queries


def test_secret_list_wait_prints_once_a_secret_is_added(
    heroctl: Callable[..., Result], server: Server, parked: threading.Event
) -> None:
    name = unique("wait_secret")
    started = time.monotonic()
    with ChangeWhenParked(parked, lambda: put_secret(server, name)):
        result = heroctl("secret", "list", "--wait", f"{int(DEADLINE)}s")
    lines = ok(result).splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "CREATED", "MODIFIED"]
    assert [line.split()[:2] for line in lines if line.split()[0] == name] == [[name, "1"]]
    assert result.stderr == ""
    assert time.monotonic() - started < DEADLINE


def test_secret_list_wait_without_change_prints_the_same_list(
    heroctl: Callable[..., Result], server: Server, parked: threading.Event
) -> None:
    put_secret(server, unique("quiet_secret"))  # the list is not empty
    plain = ok(heroctl("secret", "list"))
    started = time.monotonic()
    result = heroctl("secret", "list", "--wait", "1s")
    assert time.monotonic() - started >= 1.0
    assert ok(result) == plain
    assert result.stderr == "No change within 1s.\n"
    assert parked.is_set()

    as_json = heroctl("secret", "list", "--wait", "1s", "--json")
    assert json.loads(ok(as_json)) == server.get("/v1/secrets").body
    assert as_json.stderr == "No change within 1s.\n"
