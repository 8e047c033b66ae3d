"""Webhooks end to end: real servers deliver to a real receiver on 127.0.0.1.

The receiver (an aiohttp server in this process, on its own thread and loop)
verifies every signature (the contract's, and the Standard Webhooks one with
an implementation of its own written from that spec), records every request,
and can be taken down or made to fail. Delivery is at least once, so a
receiver may see a delivery id twice; what must hold is: every event
arrives, and first arrivals are in order of index.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from domain.webhook_signing import verify
from tests.api.authutil import assert_error
from tests.support import tls as test_tls
from tests.support.cluster import Cluster, Server, free_port, wait_until

SECRET = "whk_test_a1b2c3"
FAST_RETRY = {"HEROCTL_WEBHOOK_BACKOFF_CAP": "2", "HEROCTL_WEBHOOK_TIMEOUT": "3"}


@dataclass
class Received:
    delivery: str
    event: str
    index: int
    body: dict[str, Any]
    headers: dict[str, str]
    signed: bool  # X-HeroCtl-Signature verifies, and so does webhook-signature
    at: float


def standard_verified(secret: str, raw: bytes, headers: Any) -> bool:
    """A Standard Webhooks receiver's check, written from the spec (not with
    domain.webhook_signing): HMAC-SHA256 over `<webhook-id>.<webhook-timestamp>.<body>`
    with the secret (a `whsec_` one base64-decoded), any `v1,` signature matching,
    the timestamp within 5 minutes."""
    msg_id, ts = headers.get("webhook-id"), headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and ts and signatures) or abs(time.time() - int(ts)) > 300:
        return False
    if secret.startswith("whsec_"):
        key = base64.b64decode(secret[len("whsec_") :])
    else:
        key = secret.encode()
    mac = hmac.new(key, msg_id.encode() + b"." + ts.encode() + b"." + raw, hashlib.sha256)
    expected = base64.b64encode(mac.digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(sig, expected)
        for version, _, sig in (s.partition(",") for s in signatures.split(" "))
    )


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1:port that can go down and come back."""

    port: int = field(default_factory=free_port)
    secret: str = SECRET
    status: int = 200  # what it answers while up
    hang: bool = False  # never answer (to test that nothing waits on it)
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner: web.AppRunner | None = None
        self.never = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/heroctl"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.hang:
            await self.never.wait()
        body = json.loads(raw)
        signed = verify(
            self.secret.encode(), raw, request.headers.get("X-HeroCtl-Signature")
        ) and standard_verified(self.secret, raw, request.headers)
        rec = Received(
            request.headers.get("X-HeroCtl-Delivery", ""),
            body["event"],
            body["index"],
            body,
            dict(request.headers),
            signed,
            time.monotonic(),
        )
        with self.lock:
            self.got.append(rec)
        return web.Response(status=self.status)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/heroctl", self._handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def _stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def up(self) -> Receiver:
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def down(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)

    def close(self) -> None:
        self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.got)

    def first_arrivals(self) -> list[Received]:
        seen: set[str] = set()
        out = []
        for r in self.received():
            if r.delivery not in seen:
                seen.add(r.delivery)
                out.append(r)
        return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().up()
    try:
        yield r
    finally:
        r.close()


def _cluster(root: Path, size: int, env: dict[str, str] | None = None) -> Cluster:
    return Cluster(root, size, env={**FAST_RETRY, **(env or {})}).start()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = _cluster(tmp_path, 3)
    try:
        yield c
    finally:
        c.stop()


def add_webhook(server: Server, url: str, events: list[str]) -> dict[str, Any]:
    r = server.post("/v1/webhooks", {"url": url, "events": events, "secret": SECRET})
    assert r.status == 201, r.raw
    return r.body


def put_secret(server: Server, name: str) -> int:
    r = server.post("/v1/secrets", {"name": name, "value": "not-in-any-event"})
    assert r.status in (200, 201), r.raw
    return int(r.header("X-HeroCtl-Index") or 0)


def expected_events(server: Server, after_index: int, topic: str) -> list[dict[str, Any]]:
    r = server.get(f"/v1/events?index={after_index}&topic={topic}&limit=10000")
    assert r.status == 200, r.raw
    return r.body


def assert_delivered_in_order(
    receiver: Receiver, hook: dict[str, Any], expected: list[dict[str, Any]]
) -> None:
    got = receiver.received()
    assert got and all(r.signed for r in got), [r.headers for r in got if not r.signed]
    firsts = receiver.first_arrivals()
    assert [r.delivery for r in firsts] == [f"{hook['id']}-{e['seq']}" for e in expected]
    assert [r.index for r in firsts] == sorted(r.index for r in firsts)
    for r, e in zip(firsts, expected, strict=True):
        assert r.event == e["type"] and r.body["data"] == e["data"]
        assert set(r.body) == {"id", "event", "timestamp", "index", "data"}
        assert r.body["id"] == r.delivery == r.headers["X-HeroCtl-Delivery"]
        assert abs(int(r.headers["X-HeroCtl-Timestamp"]) - time.time()) < 600
        assert r.headers["webhook-timestamp"] == r.headers["X-HeroCtl-Timestamp"]
        assert r.headers["webhook-id"] == r.delivery
        assert r.headers["X-HeroCtl-Event"] == e["type"]
        assert "not-in-any-event" not in json.dumps(r.body)


def test_webhook_api_validation_and_secrecy(cluster: Cluster) -> None:
    s = cluster.servers[1]
    bad = [
        ({"events": ["job"], "secret": "x"}, "missing_field"),
        ({"url": "ftp://x/", "events": ["job"], "secret": "x"}, "invalid_url"),
        ({"url": "http:///nohost", "events": ["job"], "secret": "x"}, "invalid_url"),
        ({"url": "http://u:p@h/", "events": ["job"], "secret": "x"}, "invalid_url"),
        ({"url": "http://h/", "events": [], "secret": "x"}, "invalid_field"),
        ({"url": "http://h/", "events": ["job.exploded"], "secret": "x"}, "invalid_events"),
        ({"url": "http://h/", "events": ["job"]}, "missing_field"),
        ({"url": "http://h/", "events": ["job"], "secret": ""}, "invalid_field"),
        ({"url": "http://h/", "events": ["job"], "secret": "x", "extra": 1}, "invalid_field"),
    ]
    for body, code in bad:
        assert_error(s.post("/v1/webhooks", body), 400, code)
    hook = add_webhook(s, "https://example.invalid/h", ["job.deployed", "alloc.failed", "node"])
    assert hook["id"].startswith("wh_") and hook["events"] == [
        "job.deployed",
        "alloc.failed",
        "node",
    ]
    for srv in cluster.servers:  # read-your-writes anywhere; the secret is never shown
        listing = srv.get("/v1/webhooks")
        detail = srv.get(f"/v1/webhooks/{hook['id']}")
        assert detail.status == 200 and hook["id"] in [h["id"] for h in listing.body]
        assert SECRET not in listing.raw.decode() + detail.raw.decode()
        assert "secret" not in detail.body
    assert s.get(f"/v1/webhooks/{hook['id']}/deliveries").body["attempts"] == []
    assert_error(
        s.post(f"/v1/webhooks/{hook['id']}/deliveries/{hook['id']}-999999/redeliver"),
        409,
        "delivery_pending",
    )
    assert s.delete(f"/v1/webhooks/{hook['id']}").status == 200
    assert_error(s.get(f"/v1/webhooks/{hook['id']}"), 404, "webhook_not_found")
    assert_error(s.delete(f"/v1/webhooks/{hook['id']}"), 404, "webhook_not_found")


def test_receiver_down_30s_still_gets_every_event_in_order(
    cluster: Cluster, receiver: Receiver
) -> None:
    follower = cluster.followers()[0]
    hook = add_webhook(follower, receiver.url, ["secret", "job.submitted"])
    created = hook["create_index"]
    for i in range(5):
        put_secret(follower, f"up-{i}")
    wait_until(lambda: len(receiver.first_arrivals()) >= 5, 15, message="5 deliveries")

    receiver.down()
    went_down = time.monotonic()
    n = 0
    while time.monotonic() - went_down < 30.0:  # events keep coming while it is down
        put_secret(cluster.servers[n % 3], f"down-{n}")
        if n % 4 == 0:
            r = cluster.servers[n % 3].post("/v1/jobs", {"name": f"j{n}", "image": "busybox"})
            assert r.status in (200, 201)
        n += 1
        time.sleep(1.0)  # pacing the writes over the outage, not synchronization

    def failing() -> dict[str, Any] | None:
        body = follower.get(f"/v1/webhooks/{hook['id']}/deliveries").body
        return body if body["pending"] and body["pending"]["attempts"] >= 3 else None

    state = wait_until(failing, 10, message="retries recorded while down")
    assert "connect" in (state["pending"]["last_error"] or "")
    assert any(a["status"] == "failed" and a["error"] for a in state["attempts"])

    receiver.up()
    expected = expected_events(follower, created, "secret,job.submitted")
    assert len(expected) == 5 + n + (n + 3) // 4
    wait_until(
        lambda: len(receiver.first_arrivals()) >= len(expected),
        60,
        message=f"{len(expected)} deliveries after the receiver came back",
    )
    assert_delivered_in_order(receiver, hook, expected)

    def caught_up() -> bool:  # the last outcome is replicated after the receiver got it
        detail = follower.get(f"/v1/webhooks/{hook['id']}").body["delivery"]
        return detail["cursor"] == expected[-1]["seq"] and detail["pending"] is None

    wait_until(caught_up, 15, message="the cursor at the last event, nothing pending")


def test_leader_change_mid_retry_loses_no_delivery(cluster: Cluster, receiver: Receiver) -> None:
    leader = cluster.leader()
    follower = next(s for s in cluster.servers if s is not leader)
    hook = add_webhook(follower, receiver.url, ["secret"])
    put_secret(follower, "before")
    wait_until(lambda: len(receiver.first_arrivals()) == 1, 15, message="first delivery")

    receiver.status = 503  # up, but failing: the leader keeps retrying
    for i in range(6):
        put_secret(follower, f"mid-{i}")

    def retrying() -> int:
        body = follower.get(f"/v1/webhooks/{hook['id']}/deliveries").body
        pending = body["pending"]
        return pending["attempts"] if pending and pending["attempts"] >= 2 else 0

    attempts_before = wait_until(retrying, 20, message="retries in progress")
    leader.kill()  # no goodbye: whatever it had in memory is gone
    new_leader = cluster.leader(timeout=20, among=cluster.live())
    assert new_leader is not leader

    def continued() -> bool:
        body = new_leader.get(f"/v1/webhooks/{hook['id']}/deliveries").body
        return bool(body["pending"]) and body["pending"]["attempts"] > attempts_before

    wait_until(continued, 20, message="the new leader continues the same retry")
    receiver.status = 200
    expected = expected_events(new_leader, hook["create_index"], "secret")
    assert len(expected) == 7
    wait_until(lambda: len(receiver.first_arrivals()) >= 7, 30, message="all 7 delivered")
    assert_delivered_in_order(receiver, hook, expected)
    # Attempt numbers went on from where the old leader was (replicated backoff state).
    history = new_leader.get(f"/v1/webhooks/{hook['id']}/deliveries").body["attempts"]
    first_pending = next(a for a in reversed(history) if a["seq"] == expected[1]["seq"])
    last_try = next(a for a in history if a["seq"] == expected[1]["seq"])
    assert first_pending["attempt"] == 1 and last_try["status"] == "delivered"
    assert last_try["attempt"] > attempts_before


def test_redeliver_sends_the_same_delivery_again(cluster: Cluster, receiver: Receiver) -> None:
    s = cluster.servers[0]
    hook = add_webhook(s, receiver.url, ["secret.changed"])
    put_secret(s, "again")
    wait_until(lambda: len(receiver.received()) == 1, 15, message="delivery")
    first = receiver.received()[0]
    r = s.post(f"/v1/webhooks/{hook['id']}/deliveries/{first.delivery}/redeliver")
    assert r.status == 202 and r.body["queued"] is True, r.raw
    wait_until(lambda: len(receiver.received()) == 2, 15, message="redelivery")
    second = receiver.received()[1]
    assert second.delivery == first.delivery and second.body == first.body and second.signed
    assert second.headers.get("X-HeroCtl-Redelivery") == "true"

    def recorded() -> dict[str, Any] | None:  # its outcome is replicated after the receiver got it
        history = s.get(f"/v1/webhooks/{hook['id']}/deliveries").body
        newest = history["attempts"][:1]
        return history if newest and newest[0]["redelivery"] and not history["redeliver"] else None

    history = wait_until(recorded, 15, message="the redelivery recorded")
    assert [a["redelivery"] for a in history["attempts"]][:2] == [True, False]


def test_a_hanging_receiver_never_slows_the_api(tmp_path: Path, receiver: Receiver) -> None:
    """Deliveries that wait 60 s for an answer never hold a write or a read:
    the bounds tell that apart with room for a loaded machine (the API's
    latency targets are measured in bench/)."""
    cluster = _cluster(tmp_path, 3, env={"HEROCTL_WEBHOOK_TIMEOUT": "60"})
    try:
        receiver.hang = True  # accepts, reads, never answers
        leader = cluster.leader()
        for _ in range(3):
            add_webhook(leader, receiver.url, ["*"])
        latencies = []
        for i in range(30):
            started = time.monotonic()
            put_secret(leader, f"busy-{i}")
            assert leader.get("/v1/jobs").status == 200
            latencies.append(time.monotonic() - started)
    finally:
        cluster.stop()
    assert max(latencies) < 10, latencies
    assert sorted(latencies)[len(latencies) // 2] < 1.0, latencies


# --- the CLI ----------------------------------------------------------------------------
def _heroctl(server: Server, tmp_path: Path, *args: str, input: str | None = None) -> Any:
    from click.testing import CliRunner

    from cli.main import cli

    runner = CliRunner(
        env={"HEROCTL_ADDR": None, "HEROCTL_TOKEN": None, "XDG_CONFIG_HOME": str(tmp_path)}
    )
    token = ["--token", server.token] if server.token else []
    result = runner.invoke(cli, ["--address", server.url, *token, *args], input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_cli_webhook_and_events(cluster: Cluster, receiver: Receiver, tmp_path: Path) -> None:
    s = cluster.servers[2]
    out = _heroctl(
        s,
        tmp_path,
        "webhook",
        "add",
        receiver.url,
        "--event",
        "secret,job.deployed",
        input=SECRET + "\n",  # piped stdin, never argv
    ).stdout
    wid = out.split()[1]
    assert wid.startswith("wh_") and SECRET not in out
    put_secret(s, "cli-1")
    wait_until(lambda: receiver.first_arrivals(), 15, message="a delivery")
    assert all(r.signed for r in receiver.received())  # the piped secret signs
    listing = _heroctl(s, tmp_path, "webhook", "list").stdout
    assert wid in listing and receiver.url in listing and SECRET not in listing
    shown = json.loads(_heroctl(s, tmp_path, "webhook", "show", wid, "--json").stdout)
    assert shown["id"] == wid and "secret" not in shown

    def delivered() -> str | None:  # the outcome is replicated after the receiver got it
        out = _heroctl(s, tmp_path, "webhook", "deliveries", wid).stdout
        return out if "delivered" in out else None

    deliveries = wait_until(delivered, 15, message="the delivery recorded")
    assert f"{wid}-" in deliveries
    delivery = receiver.first_arrivals()[0].delivery
    assert "queued" in _heroctl(s, tmp_path, "webhook", "redeliver", wid, delivery).stdout
    wait_until(lambda: len(receiver.received()) >= 2, 15, message="the redelivery")

    def settled() -> bool:  # the redelivery's outcome is replicated after the receiver got it
        delivery = s.get(f"/v1/webhooks/{wid}").body["delivery"]
        return not delivery["redeliver_queued"] and delivery["pending"] is None

    wait_until(settled, 15, message="the redelivery recorded")
    # --wait: nothing changes within 1s -> printed unchanged, note on stderr
    waited = _heroctl(s, tmp_path, "webhook", "list", "--wait", "1s")
    assert wid in waited.stdout and "No change within" in waited.stderr

    events = _heroctl(s, tmp_path, "events", "--topic", "secret").stdout
    assert "secret.changed" in events and "name=cli-1" in events and "not-in-any" not in events
    as_json = json.loads(_heroctl(s, tmp_path, "events", "--json", "--index", "0").stdout)
    assert {e["type"] for e in as_json} >= {"secret.changed"}

    assert "deleted" in _heroctl(s, tmp_path, "webhook", "rm", wid, "--yes").stdout
    assert "No webhooks." in _heroctl(s, tmp_path, "webhook", "list").stdout


async def test_cli_follow_long_polls_from_an_index(cluster: Cluster) -> None:
    from cli.cmd_events import follow, line
    from client import ApiClient

    s = cluster.servers[0]
    got: list[dict[str, Any]] = []
    async with ApiClient(s.url, s.token, ca_file=str(test_tls.bundle())) as api:
        _, index = await api.blocking_get("/v1/events")
        task = asyncio.create_task(follow(api, ("secret",), index, got.append, max_polls=1))
        await asyncio.to_thread(put_secret, s, "followed")
        await asyncio.wait_for(task, 20)
    assert [e["data"]["name"] for e in got] == ["followed"]
    assert "secret.changed" in line(got[0]) and "name=followed" in line(got[0])


# --- the deliverer's decisions, against a local state (no cluster) ---------------------
class _LocalReplica:
    """Just enough of a Replica for the deliverer: a State that writes apply to at once."""

    closing = False

    def __init__(self) -> None:
        from raft.state import State
        from raft.views import Reading

        self.state = State()
        self.index = 1
        self._reading = Reading(self.state)

    def read(self) -> Any:
        return self._reading

    async def write(self, op: str, **fields: Any) -> dict[str, Any]:
        from raft.fsm import apply_batch
        from raft.replica import CommandRejected

        self.index += 1
        result = apply_batch(
            self.state, [{"op": op, "ts": int(time.time() * 1000), **fields}], self.index
        )[0]
        if not result["ok"]:
            raise CommandRejected(result["status"], result["error"], result["message"])
        return result

    async def add_webhook(self, cluster_key: str, wid: str, url: str, secret: str = SECRET) -> None:
        from domain.webhook_signing import WebhookSecrets

        sealed = WebhookSecrets(cluster_key).seal(wid, secret)
        await self.write("webhook.create", id=wid, url=url, events=["secret"], secret=sealed)

    async def put_secret(self, version: int) -> None:
        await self.write(
            "secret.put", name="s", version=version, key_id="k1", nonce=b"n" * 12, ciphertext=b"c"
        )


async def test_deliverer_gives_up_after_max_age_and_goes_on(receiver: Receiver) -> None:
    from heroctld.controllers.webhooks import Deliverer, DeliverySettings
    from raft.keys import generate_cluster_key

    key = generate_cluster_key()
    replica = _LocalReplica()
    wid = "wh_00000000000000aa"
    await replica.add_webhook(key, wid, receiver.url)
    for v in (1, 2):
        await replica.put_secret(v)
    settings = DeliverySettings(
        backoff_base=0.05, backoff_cap=0.05, max_age=0.3, timeout=2, allow_private=True
    )
    d = Deliverer(replica, key, settings)  # type: ignore[arg-type]
    d.session = d.new_session()
    receiver.status = 500
    try:

        def row() -> dict[str, Any]:
            return replica.state.table("deliveries")[wid]

        started = time.monotonic()
        while row()["cursor"] < 1 and time.monotonic() - started < 10:
            assert await d._step(wid)
        history = row()["history"]
        assert history[-1]["status"] == "gave_up" and history[-1]["seq"] == 1
        assert all(a["status"] == "failed" for a in history[:-1]) and len(history) >= 2
        receiver.status = 200  # the next event goes through at once
        while row()["cursor"] < 2 and time.monotonic() - started < 10:
            assert await d._step(wid)
        assert row()["history"][-1]["status"] == "delivered" and row()["pending"] is None
        await replica.write("webhook.delete", id=wid)
        assert await d._step(wid) is False  # a deleted webhook's task ends
    finally:
        await d.session.close()
