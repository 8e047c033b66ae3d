"""The client's failover between servers and its retries of 429 and 503
(client.retry, client.transport) against small stand-in servers that answer
429/503, drop connections or refuse them, as a real server does while it
restarts, elects or sheds load."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from client import (
    DEFAULT_RETRY,
    ApiClient,
    ApiClientError,
    ApiUnreachable,
    RetryPolicy,
    parse_addresses,
)
from client.retry import retry_after_seconds
from tests.support.cluster import free_port

FAST = RetryPolicy(attempts=5, budget=10.0, base_delay=0.01, max_delay=0.05)
# per request: a status to answer, "drop" (close, no answer) or "unknown" (503 whose
# outcome is unknown)
Script = list[int | str]


@dataclass
class Stand:
    """A stand-in server: answers its script in order, then 200 with its name."""

    name: str
    script: Script = field(default_factory=list)
    retry_after: str | None = None
    hits: list[str] = field(default_factory=list)  # "METHOD /path" per request
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(f"{request.method} {request.path}")
        step = self.script.pop(0) if self.script else 200
        if step == "drop":
            assert request.transport is not None
            request.transport.abort()  # a reset: no answer at all
            await asyncio.sleep(5)
            return web.Response()
        if step == 200:
            return web.json_response({"server": self.name, "method": request.method})
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        if step == "unknown":  # a write proposed, never confirmed (it may still commit)
            step, headers["X-HeroCtl-Outcome"] = 503, "unknown"
        body = {"error": "no_leader" if step == 503 else "rate_limited", "message": str(step)}
        return web.json_response(body, status=int(step), headers=headers)

    async def sse(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(f"{request.method} {request.path}")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f'event: hello\ndata: {{"server": "{self.name}"}}\n\n'.encode())
        return response


@pytest.fixture
async def stands() -> AsyncIterator[Callable[..., Any]]:
    async with AsyncExitStack() as stack:

        async def make(name: str, script: Script | None = None, **kw: Any) -> Stand:
            stand = Stand(name, list(script or []), **kw)
            app = web.Application()
            app.router.add_get("/v1/events", stand.sse)
            app.router.add_route("*", "/{tail:.*}", stand.handle)
            server = TestServer(app, host="127.0.0.1")
            await server.start_server()
            stack.push_async_callback(server.close)
            stand.url = str(server.make_url("")).rstrip("/")
            return stand

        yield make


def refused() -> str:
    return f"http://127.0.0.1:{free_port()}"


async def test_a_refused_server_is_skipped_and_the_next_one_kept(stands: Any) -> None:
    b = await stands("b")
    down = refused()
    async with ApiClient(f"{down},{b.url}") as api:
        assert (await api.get("/v1/jobs"))[0]["server"] == "b"
        assert (await api.post("/v1/jobs", {"name": "x"}))[0]["server"] == "b"  # never sent to a
        assert api.address == b.url  # the next request goes to b first
    assert b.hits == ["GET /v1/jobs", "POST /v1/jobs"]


async def test_503_fails_over_at_once_for_every_method(stands: Any) -> None:
    a = await stands("a", [503, 503], retry_after="30")
    b = await stands("b")
    async with ApiClient([a.url, b.url]) as api:  # no retry policy: failover still happens
        started = time.monotonic()
        assert (await api.get("/v1/x"))[0]["server"] == "b"
        assert (await api.post("/v1/jobs", {"n": 1}))[0]["server"] == "b"
        assert time.monotonic() - started < 5  # no Retry-After pause: b answered
    assert a.hits == ["GET /v1/x"]  # b answered last, so the POST went there first


async def test_503_on_every_server_is_retried_after_retry_after(stands: Any) -> None:
    a = await stands("a", [503, 503], retry_after="1")
    async with ApiClient(a.url, retry=FAST) as api:
        started = time.monotonic()
        body, _ = await api.post("/v1/jobs", {"name": "web"})
        elapsed = time.monotonic() - started
    assert body["server"] == "a" and len(a.hits) == 3
    assert elapsed >= 2.0  # two pauses of Retry-After: 1


async def test_503_is_retried_a_bounded_number_of_times(stands: Any) -> None:
    a = await stands("a", [503] * 50, retry_after="0")
    async with ApiClient(a.url, retry=FAST) as api:
        with pytest.raises(ApiClientError) as e:
            await api.get("/v1/jobs")
    assert (e.value.status, e.value.code) == (503, "no_leader")
    assert len(a.hits) == FAST.attempts


async def test_no_pause_ends_after_the_budget(stands: Any) -> None:
    a = await stands("a", [503] * 50, retry_after="2")
    policy = RetryPolicy(attempts=10, budget=3.0, base_delay=0.01)
    async with ApiClient(a.url, retry=policy) as api:
        started = time.monotonic()
        with pytest.raises(ApiClientError):
            await api.get("/v1/jobs")
        elapsed = time.monotonic() - started
    assert len(a.hits) == 2 and 2.0 <= elapsed < 3.0  # a second pause would end past 3 s


async def test_without_a_policy_a_single_server_503_is_raised_at_once(stands: Any) -> None:
    a = await stands("a", [503], retry_after="0")
    async with ApiClient(a.url) as api:
        with pytest.raises(ApiClientError) as e:
            await api.get("/v1/jobs")
    assert e.value.status == 503 and len(a.hits) == 1


async def test_429_waits_retry_after_on_the_same_server(stands: Any) -> None:
    a = await stands("a", [429], retry_after="1")
    b = await stands("b")
    async with ApiClient([a.url, b.url], retry=FAST) as api:
        started = time.monotonic()
        body, _ = await api.post("/v1/jobs", {"name": "web"})
        elapsed = time.monotonic() - started
    assert body["server"] == "a" and b.hits == []  # the limit is a's: b is not used to dodge it
    assert elapsed >= 1.0


async def test_429_longer_than_the_budget_is_raised_at_once(stands: Any) -> None:
    a = await stands("a", [429], retry_after="120")
    async with ApiClient(a.url, retry=DEFAULT_RETRY) as api:
        started = time.monotonic()
        with pytest.raises(ApiClientError) as e:
            await api.get("/v1/jobs")
    assert e.value.status == 429 and e.value.headers["Retry-After"] == "120"
    assert time.monotonic() - started < 10  # not the 120 s asked for (room for a loaded machine)


async def test_a_lost_answer_fails_over_only_when_repeating_is_safe(stands: Any) -> None:
    a = await stands("a", ["drop"] * 4)  # aiohttp itself tries a GET twice
    b = await stands("b")
    async with ApiClient([a.url, b.url], retry=FAST) as api:
        assert (await api.get("/v1/jobs"))[0]["server"] == "b"
        api._current = 0  # back to a for the next two
        with pytest.raises(ApiUnreachable):  # a POST that may have been acted on: not resent
            await api.post("/v1/tokens", {"name": "x"})
        assert b.hits == ["GET /v1/jobs"]
        api._current = 0
        sent = await api.submit_job({"name": "web"})  # resubmitting a spec changes nothing more
    assert sent["server"] == "b" and b.hits[-1] == "POST /v1/jobs"
    assert a.hits.count("POST /v1/tokens") == 1


async def test_a_503_with_an_unknown_outcome_is_resent_only_when_repeating_is_safe(
    stands: Any,
) -> None:
    a = await stands("a", ["unknown", "unknown"], retry_after="0")
    b = await stands("b")
    async with ApiClient([a.url, b.url], retry=FAST) as api:
        with pytest.raises(ApiClientError) as e:  # a token made twice would be two tokens
            await api.post("/v1/acl/tokens", {"name": "x"})
        assert (e.value.status, e.value.code) == (503, "no_leader")
        assert b.hits == []
        api._current = 0
        sent = await api.submit_job({"name": "web"})  # resubmitting a spec changes nothing more
    assert sent["server"] == "b" and a.hits == ["POST /v1/acl/tokens", "POST /v1/jobs"]


async def test_every_server_refusing_is_one_error_without_waiting(stands: Any) -> None:
    one, two = refused(), refused()
    async with ApiClient(f"{one}, {two}", retry=DEFAULT_RETRY) as api:
        started = time.monotonic()
        with pytest.raises(ApiUnreachable) as e:
            await api.get("/v1/jobs")
    assert time.monotonic() - started < 1.0
    assert e.value.address == f"{one}, {two}" and e.value.reason == "connection refused"


async def test_a_servers_answer_is_reported_over_a_later_refusal(stands: Any) -> None:
    a = await stands("a", [503])
    async with ApiClient([a.url, refused()]) as api:
        with pytest.raises(ApiClientError) as e:
            await api.get("/v1/jobs")
    assert (e.value.status, e.value.code) == (503, "no_leader")


async def test_a_round_with_a_busy_server_is_retried_until_one_answers(stands: Any) -> None:
    a = await stands("a", [503, 503], retry_after="0")
    async with ApiClient([refused(), a.url], retry=FAST) as api:
        assert (await api.post("/v1/jobs", {"name": "web"}))[0]["server"] == "a"
    assert len(a.hits) == 3


async def test_an_event_stream_opens_on_the_next_server(stands: Any) -> None:
    a = await stands("a", [503])
    b = await stands("b")
    async with ApiClient([refused(), b.url]) as api:
        events = [e async for e in api.sse("/v1/events")]
    assert events == [("hello", {"server": "b"})]
    del a


def test_addresses_are_parsed_in_order_without_repeats() -> None:
    assert parse_addresses("10.0.0.1:7070, https://b:7070/,10.0.0.1:7070") == [
        "http://10.0.0.1:7070",
        "https://b:7070",
    ]
    with pytest.raises(ValueError):
        parse_addresses(" , ")


def test_retry_after_takes_seconds_or_a_date() -> None:
    assert retry_after_seconds({"Retry-After": "12"}) == 12.0
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= (retry_after_seconds({"Retry-After": date}, now=now) or 0) <= 30
