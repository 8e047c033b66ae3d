"""Webhooks may not reach the cluster's own network, and a receiver cannot make the
leader read a huge answer.

Every connection in these tests goes to 127.0.0.1: the refusals happen before
anything connects, and the names that resolve are `localhost` and a name a
test resolver answers with 127.0.0.1 (as a rebinding DNS server would).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from heroctld.controllers.webhooks import Deliverer, DeliverySettings
from raft.keys import generate_cluster_key
from tests.api.authutil import assert_error
from tests.integration.test_events_webhooks import Receiver, _LocalReplica
from tests.support.cluster import Cluster, Server

WHSEC = "whsec_" + base64.b64encode(bytes(range(32))).decode()  # Standard Webhooks' form
HUGE = 256 * 2**20  # bytes a receiver tries to answer with


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().up()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server as shipped: private addresses refused (the harness allows them)."""
    c = Cluster(
        tmp_path_factory.mktemp("strict"), 1, env={"HEROCTL_WEBHOOKS_ALLOW_PRIVATE": "false"}
    ).start()
    try:
        yield c.servers[0]
    finally:
        c.stop()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("https://0.0.0.0/", "unspecified"),
        ("http://localhost:9/hook", "loopback"),  # a name: resolved, then refused
    ],
)
def test_webhooks_to_non_public_addresses_are_refused_at_creation(
    strict: Server, url: str, reason: str
) -> None:
    r = strict.post("/v1/webhooks", {"url": url, "events": ["*"], "secret": "whk_x"})
    assert_error(r, 400, "url_not_public")
    assert reason in r.body["message"] and "allow_private" in r.body["message"]
    assert strict.get("/v1/webhooks").body == []  # nothing was created


def test_a_malformed_standard_webhooks_secret_is_refused(strict: Server) -> None:
    for secret in ("whsec_not*base64", "whsec_" + base64.b64encode(b"short").decode()):
        r = strict.post(
            "/v1/webhooks", {"url": "http://10.0.0.1/", "events": ["*"], "secret": secret}
        )
        assert_error(r, 400, "invalid_field")
        assert "whsec_" in r.body["message"] and secret not in r.body["message"]


class Rebinding(AbstractResolver):
    """A DNS answer that changed since the webhook was created: `rebind.test` now
    resolves to 127.0.0.1. Other names go to aiohttp's own resolver."""

    def __init__(self) -> None:
        self.default = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != "rebind.test":
            return await self.default.resolve(host, port, family)
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        await self.default.close()


async def _deliver_once(
    replica: _LocalReplica, key: str, wid: str, allow_private: bool
) -> dict[str, Any]:
    """The next attempt of `wid` (steps past a retry's short backoff), with the
    rebinding resolver."""
    settings = DeliverySettings(
        backoff_base=0.01, backoff_cap=0.01, timeout=5, allow_private=allow_private
    )
    d = Deliverer(replica, key, settings)  # type: ignore[arg-type]
    d.session = d.new_session(Rebinding())

    def attempts() -> int:
        return len(replica.state.table("deliveries")[wid]["history"])

    before = attempts()
    try:
        while attempts() == before:
            assert await d._step(wid)
    finally:
        await d.session.close()
    return replica.state.table("deliveries")[wid]["history"][-1]


async def test_the_deliverer_refuses_non_public_addresses_before_connecting(
    receiver: Receiver,
) -> None:
    key, replica = generate_cluster_key(), _LocalReplica()
    port = receiver.port
    urls = {
        "wh_000000000000000a": f"http://127.0.0.1:{port}/hooks/heroctl",  # a literal
        "wh_000000000000000b": f"http://localhost:{port}/hooks/heroctl",  # resolves to loopback
        "wh_000000000000000c": f"http://rebind.test:{port}/hooks/heroctl",  # resolves there now
    }
    for wid, url in urls.items():
        await replica.add_webhook(key, wid, url, WHSEC)
    await replica.put_secret(1)
    for wid in urls:
        attempt = await _deliver_once(replica, key, wid, allow_private=False)
        assert attempt["status"] == "failed" and attempt["error"].startswith("refused:"), attempt
        assert "loopback" in attempt["error"] and "allow_private" in attempt["error"]
    assert receiver.received() == []  # nothing ever connected
    # allowed, the connection goes to the address the resolver answered (the one checked)
    receiver.secret = WHSEC
    attempt = await _deliver_once(replica, key, "wh_000000000000000c", allow_private=True)
    assert attempt["status"] == "delivered", attempt
    (got,) = receiver.received()
    assert got.signed  # both signatures, the Standard Webhooks one with the whsec_ key


class HugeReceiver(Receiver):
    """Answers 200 with a body of HUGE bytes, and counts what it managed to send."""

    sent: int = 0
    finished: bool = False

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=200)
        response.content_length = HUGE
        await response.prepare(request)
        chunk = b"x" * 2**20
        try:
            while self.sent < HUGE:
                await response.write(chunk)
                self.sent += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the deliverer hung up
        finally:
            self.finished = True
        return response

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/huge", self._huge)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()


async def test_a_huge_answer_is_not_read() -> None:
    huge = HugeReceiver().up()
    try:
        key, replica, wid = generate_cluster_key(), _LocalReplica(), "wh_00000000000000ff"
        await replica.add_webhook(key, wid, f"http://127.0.0.1:{huge.port}/hooks/huge")
        await replica.put_secret(1)
        attempt = await _deliver_once(replica, key, wid, allow_private=True)
        assert attempt["status"] == "delivered" and attempt["code"] == 200, attempt
        deadline = time.monotonic() + 10
        while not huge.finished and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert huge.finished, "the receiver is still sending: someone is reading it all"
        assert huge.sent < HUGE // 4, huge.sent  # what socket buffers took, not the body
    finally:
        huge.close()
