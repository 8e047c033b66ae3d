"""Long polling on every list/detail read, and the event stream, on a real 3-server cluster.

A long poll parked on a follower is woken by a write acknowledged by the
leader (not by its wait running out); an idle one returns after its wait with
the index it was given. The wake latency target (200 ms) is measured in
bench/bench_longpoll.py: here the bounds only tell a wake from a wait, with
room for a loaded machine.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.api.authutil import as_, assert_error, make_token, put_policy
from tests.support import tls as test_tls
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.http import Reply
from tests.support.nodes import HandNode

# Seconds from the leader's ack to the follower's answer: far below the 30 s
# wait (so a wake, not the wait), far above the latency a loaded machine adds.
WAKE_BUDGET = 5.0


def _connector() -> aiohttp.TCPConnector:
    """The test clusters' CAs trusted (tests/support/tls.py)."""
    return aiohttp.TCPConnector(ssl=test_tls.context())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {"HEROCTL_SSE_PING_INTERVAL": "1"}
    c = Cluster(tmp_path_factory.mktemp("longpoll"), 3, env=env).start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def leader(cluster: Cluster) -> Server:
    return cluster.leader()


@pytest.fixture(scope="module")
def follower(cluster: Cluster, leader: Server) -> Server:
    return next(s for s in cluster.servers if s is not leader)


def index_of(r: Reply) -> int:
    assert r.status == 200, (r.status, r.raw[:300])
    return int(r.header("X-HeroCtl-Index") or 0)


class Poll:
    """A blocking GET in a thread; records when its answer arrived."""

    def __init__(
        self, server: Server, path: str, timeout: float = 60.0, token: str | None = None
    ) -> None:
        self.reply: Reply | None = None
        self.error: BaseException | None = None
        self.returned_at = 0.0
        self.done = threading.Event()

        def run() -> None:
            try:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                self.reply = server.get(path, timeout=timeout, headers=headers)
            except BaseException as e:  # noqa: BLE001 - reported by the test
                self.error = e
            self.returned_at = time.monotonic()
            self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self, timeout: float = 30.0) -> Reply:
        assert self.done.wait(timeout), "the long poll did not return"
        if self.error is not None:
            raise self.error
        assert self.reply is not None
        return self.reply


def assert_parked(poll: Poll, seconds: float = 0.3) -> None:
    """The poll really blocks (it has not answered on its own)."""
    assert not poll.done.wait(seconds), (poll.reply, poll.error)


def test_follower_long_poll_wakes_at_a_leader_write(leader: Server, follower: Server) -> None:
    leader.post("/v1/secrets", {"name": "lp-warm", "value": "v"})
    delays = []
    for i in range(5):
        index = index_of(follower.get("/v1/secrets"))
        poll = Poll(follower, f"/v1/secrets?index={index}&wait=30s")
        assert_parked(poll)
        r = leader.post("/v1/secrets", {"name": f"lp-{i}", "value": "v"})
        acked = time.monotonic()
        assert r.status == 201, r.raw
        reply = poll.result()
        delays.append(poll.returned_at - acked)
        assert index_of(reply) > index
        assert f"lp-{i}" in [s["name"] for s in reply.body]  # the write is in the answer
    print("wake delays (ms):", [round(d * 1000, 1) for d in delays])
    assert max(delays) < WAKE_BUDGET, delays


def test_idle_long_poll_returns_after_its_wait_with_the_same_index(follower: Server) -> None:
    index = index_of(follower.get("/v1/jobs"))
    started = time.monotonic()
    r = follower.get(f"/v1/jobs?index={index}&wait=1s")
    elapsed = time.monotonic() - started
    assert index_of(r) == index
    assert 1.0 <= elapsed < 1.0 + 1 / 16 + 5, elapsed  # the wait, its jitter, a loaded machine


def test_wait_units_and_bad_parameters(follower: Server) -> None:
    index = index_of(follower.get("/v1/secrets"))
    started = time.monotonic()
    assert index_of(follower.get(f"/v1/secrets?index={index}&wait=300ms")) == index
    assert time.monotonic() - started < 10  # 300 ms, not 300 s (room for a loaded machine)
    # An index already passed answers at once, whatever the wait.
    started = time.monotonic()
    assert index_of(follower.get("/v1/secrets?index=1&wait=10m")) == index
    # The one duration grammar (domain.durations): parts add up, and any unit goes.
    assert index_of(follower.get("/v1/secrets?index=1&wait=1h30m")) == index
    assert index_of(follower.get("/v1/secrets?index=1&wait=2D")) == index
    assert time.monotonic() - started < 10  # none of the waits was waited
    assert_error(follower.get("/v1/jobs?index=abc"), 400, "invalid_parameter")
    assert_error(follower.get("/v1/jobs?index=1&wait=soon"), 400, "invalid_parameter")
    assert_error(follower.get("/v1/jobs?index=1&wait=1:30"), 400, "invalid_parameter")


def _created_webhook(server: Server) -> str:
    r = server.post(
        "/v1/webhooks",
        {"url": "http://127.0.0.1:9/hook", "events": ["job.deployed"], "secret": "s3cr3t"},
    )
    assert r.status == 201, r.raw
    return r.body["id"]


def _placed_job(server: Server) -> None:
    """A node with room (registered by hand: it never heartbeats) and a job for it."""
    node = HandNode(server, id="lp-big", name="lp-big")
    assert node.register(resources={"cpu": 8000, "memory": 8192, "disk": 8192}).status == 200
    r = server.post("/v1/jobs", {"name": "lp-placed", "image": "busybox", "count": 1})
    assert r.status in (200, 201), r.raw


@pytest.mark.parametrize(
    "path, write",
    [
        ("/v1/jobs", lambda s: s.post("/v1/jobs", {"name": "lp-job", "image": "busybox"})),
        ("/v1/jobs/lp-job", lambda s: s.post("/v1/jobs", {"name": "lp-job", "image": "b:2"})),
        (
            "/v1/jobs/lp-job/versions",
            lambda s: s.post("/v1/jobs", {"name": "lp-job", "image": "c"}),
        ),
        ("/v1/secrets", lambda s: s.post("/v1/secrets", {"name": "lp-s", "value": "1"})),
        ("/v1/secrets/lp-s", lambda s: s.post("/v1/secrets", {"name": "lp-s", "value": "2"})),
        (
            "/v1/secrets/lp-s/versions",
            lambda s: s.post("/v1/secrets", {"name": "lp-s", "value": "3"}),
        ),
        ("/v1/webhooks", _created_webhook),
        ("/v1/allocations", _placed_job),
        ("/v1/nodes", lambda s: HandNode(s, id="lp-n", name="lp-n").register()),
        ("/v1/events", lambda s: s.post("/v1/secrets", {"name": "lp-e", "value": "1"})),
    ],
)
def test_every_read_long_polls(leader: Server, follower: Server, path: str, write: Any) -> None:
    first = follower.get(path)
    if first.status == 404:  # a detail read of something an earlier case creates
        write(leader)
        first = follower.get(path)
    index = index_of(first)
    if path.startswith("/v1/events"):
        index = int(first.header("X-HeroCtl-Index") or 0)
    poll = Poll(follower, f"{path}{'&' if '?' in path else '?'}index={index}&wait=20s")
    assert_parked(poll)
    write(leader)
    reply = poll.result()
    assert index_of(reply) > index


def test_cluster_peers_long_poll(leader: Server, follower: Server) -> None:
    index = index_of(follower.get("/v1/cluster/peers"))
    started = time.monotonic()
    assert index_of(follower.get(f"/v1/cluster/peers?index={index}&wait=500ms")) == index
    assert time.monotonic() - started >= 0.5


# --- the event stream ---------------------------------------------------------------
def test_events_page_topics_and_long_poll(leader: Server, follower: Server) -> None:
    leader.post("/v1/secrets", {"name": "ev-a", "value": "v"})
    leader.post("/v1/jobs", {"name": "ev-job", "image": "busybox"})
    # read-your-writes: the follower's page holds both after a consistent read
    page = follower.get("/v1/events?index=0").body
    types = [e["type"] for e in page]
    assert "secret.changed" in types and "job.submitted" in types
    seqs = [e["seq"] for e in page]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [e["index"] for e in page] == sorted(e["index"] for e in page)
    jobs_only = follower.get("/v1/events?index=0&topic=job").body
    assert jobs_only and all(e["type"].startswith("job.") for e in jobs_only)
    assert all(
        e["type"] == "secret.changed" for e in follower.get("/v1/events?topic=secret.changed").body
    )
    assert not any("value" in json.dumps(e["data"]) for e in page if e["type"] == "secret.changed")
    assert_error(follower.get("/v1/events?topic=bogus"), 400, "invalid_parameter")
    # A long poll filtered on `node` is not woken by a secret write.
    r = follower.get("/v1/events?topic=node.down")
    index = index_of(r)
    poll = Poll(follower, f"/v1/events?index={index}&wait=1s&topic=node.down")
    leader.post("/v1/secrets", {"name": "ev-b", "value": "v"})
    reply = poll.result()
    assert reply.body == [] and index_of(reply) >= index
    # ... while one on `secret` returns with exactly the new event.
    index = index_of(follower.get("/v1/events?topic=secret"))
    poll = Poll(follower, f"/v1/events?index={index}&wait=20s&topic=secret")
    assert_parked(poll, 0.2)
    leader.post("/v1/secrets", {"name": "ev-c", "value": "v"})
    got = poll.result().body
    assert [(e["type"], e["data"]["name"]) for e in got] == [("secret.changed", "ev-c")]


async def _read_sse(
    url: str, headers: dict[str, str], want: int, timeout: float = 20.0
) -> tuple[list[dict[str, Any]], list[str], int]:
    """(events, ids, ping comments) from an SSE stream, until `want` events."""
    events: list[dict[str, Any]] = []
    ids: list[str] = []
    comments = 0
    async with (
        aiohttp.ClientSession(connector=_connector()) as session,
        session.get(url, headers=headers) as r,
    ):
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            async for raw in r.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith(":"):
                    comments += 1
                elif line == "":
                    if "data" in fields:
                        ev = json.loads(fields["data"])
                        assert ev["type"] == fields.get("event")
                        events.append(ev)
                        ids.append(fields.get("id", ""))
                        if len(events) >= want:
                            break
                    fields = {}
                else:
                    key, _, value = line.partition(":")
                    fields[key] = value[1:] if value.startswith(" ") else value
    return events, ids, comments


async def test_sse_stream_on_a_follower_with_resume(
    cluster: Cluster, leader: Server, follower: Server
) -> None:
    auth = {"Authorization": f"Bearer {cluster.token}"}
    base = follower.url + "/v1/events?stream=true&topic=secret"
    start = index_of(await asyncio.to_thread(follower.get, "/v1/events?topic=secret"))

    async def write(names: list[str]) -> None:
        for name in names:
            r = await asyncio.to_thread(leader.post, "/v1/secrets", {"name": name, "value": "v"})
            assert r.status in (200, 201)

    # Live: a stream opened now sees writes made on the leader, in order.
    reader = asyncio.create_task(_read_sse(f"{base}&index={start}", auth, 3))
    await write(["sse-1", "sse-2", "sse-3"])
    events, ids, _ = await reader
    assert [e["data"]["name"] for e in events] == ["sse-1", "sse-2", "sse-3"]
    assert ids == [e["id"] for e in events] and ids[0] == f"{events[0]['index']}-{events[0]['seq']}"
    # Written while nobody listens ...
    await write(["sse-4", "sse-5"])
    # ... and resumed with Last-Event-ID (as a browser does), on another server.
    other = next(s for s in cluster.servers if s is not follower)
    resumed, _, _ = await _read_sse(
        other.url + "/v1/events?stream=true&topic=secret", {**auth, "Last-Event-ID": ids[-1]}, 2
    )
    assert [e["data"]["name"] for e in resumed] == ["sse-4", "sse-5"]
    # ... or with ?index= (everything after that raft index).
    again, _, _ = await _read_sse(f"{base}&index={events[1]['index']}", auth, 3)
    assert [e["data"]["name"] for e in again] == ["sse-3", "sse-4", "sse-5"]


async def test_sse_stream_sends_heartbeats(cluster: Cluster, follower: Server) -> None:
    """An idle stream sends `: ping` comments (every 15 s; 1 s in this cluster)."""
    auth = {"Authorization": f"Bearer {cluster.token}"}
    url = follower.url + "/v1/events?stream=true&topic=cert.renewed"
    async with (
        aiohttp.ClientSession(connector=_connector()) as session,
        session.get(url, headers=auth) as r,
    ):
        assert r.status == 200
        line = await asyncio.wait_for(r.content.readline(), 10)
        assert line.startswith(b": ping")


# --- access ---------------------------------------------------------------------------
def test_events_need_the_events_resource(leader: Server, follower: Server) -> None:
    put_policy(leader, "lp-jobs", {"jobs": "read"})
    put_policy(leader, "lp-events", {"events": "read"})
    jobs_only = make_token(leader, ["lp-jobs"])["secret_id"]
    events = make_token(leader, ["lp-events"])["secret_id"]

    def allowed() -> bool:
        return as_(follower, events, "GET", "/v1/events").status == 200

    wait_until(allowed, 10, message="the new token on the follower")
    assert_error(as_(follower, jobs_only, "GET", "/v1/events"), 403)
    assert_error(as_(follower, events, "GET", "/v1/webhooks"), 403)


async def _stream_ends(url: str, headers: dict[str, str], end: Any) -> list[str]:
    """Open an SSE stream, call ``end()`` once it answers, and read until the
    server closes it (30 s at most): the comment lines it sent."""
    comments: list[str] = []
    async with (
        aiohttp.ClientSession(connector=_connector()) as session,
        session.get(url, headers=headers) as r,
    ):
        assert r.status == 200, await r.text()
        await asyncio.to_thread(end)
        async with asyncio.timeout(30):  # a stream still open after it fails the test
            async for raw in r.content:
                if raw.startswith(b":"):
                    comments.append(raw.decode().strip())
    return comments


async def test_an_open_event_stream_ends_when_its_token_is_deleted(
    leader: Server, follower: Server
) -> None:
    put_policy(leader, "lp-stream", {"events": "read"})
    made = make_token(leader, ["lp-stream"])
    auth = {"Authorization": f"Bearer {made['secret_id']}"}
    wait_until(lambda: as_(follower, made["secret_id"], "GET", "/v1/events").status == 200, 10)

    def delete() -> None:
        assert leader.delete(f"/v1/acl/tokens/{made['accessor_id']}").status == 200

    url = follower.url + "/v1/events?stream=true&topic=secret"
    comments = await _stream_ends(url, auth, delete)
    assert comments[-1] == ": the credential is no longer valid"
    assert_error(as_(follower, made["secret_id"], "GET", "/v1/events"), 401)


async def test_an_open_event_stream_ends_when_its_policy_stops_allowing_it(
    leader: Server, follower: Server
) -> None:
    put_policy(leader, "lp-shrinks", {"events": "read"})
    secret = make_token(leader, ["lp-shrinks"])["secret_id"]
    wait_until(lambda: as_(follower, secret, "GET", "/v1/events").status == 200, 10)

    def shrink() -> None:
        put_policy(leader, "lp-shrinks", {"jobs": "read"})

    url = follower.url + "/v1/events?stream=true"
    comments = await _stream_ends(url, {"Authorization": f"Bearer {secret}"}, shrink)
    assert comments[-1] == ": the credential is no longer valid"


def test_a_parked_long_poll_answers_401_once_its_token_is_deleted(
    leader: Server, follower: Server
) -> None:
    put_policy(leader, "lp-parked", {"secrets": "list"})
    made = make_token(leader, ["lp-parked"])
    wait_until(lambda: as_(follower, made["secret_id"], "GET", "/v1/secrets").status == 200, 10)
    index = index_of(follower.get("/v1/secrets"))
    poll = Poll(follower, f"/v1/secrets?index={index}&wait=2s", token=made["secret_id"])
    assert_parked(poll, 0.2)
    assert leader.delete(f"/v1/acl/tokens/{made['accessor_id']}").status == 200
    assert_error(poll.result(), 401)  # not the secrets' names
