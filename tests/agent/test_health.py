"""Allocation health: the pure state machine and the real check runners."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from agent.health import HealthTracker, run_check


def tracker(min_healthy: float = 10, deadline: float = 60, began: float = 0.0) -> HealthTracker:
    return HealthTracker(min_healthy_time=min_healthy, healthy_deadline=deadline, began=began)


def test_healthy_after_min_healthy_time_of_continuous_ok() -> None:
    h = tracker(min_healthy=10)
    assert not h.observe(1.0, True)
    assert h.wake_at() == 11.0
    assert not h.observe(10.9, True)
    assert h.healthy is None
    assert h.observe(11.0, True)
    assert h.healthy is True
    assert h.wake_at() is None


def test_a_break_restarts_the_clock() -> None:
    h = tracker(min_healthy=10)
    h.observe(0.0, True)
    h.observe(9.0, False)  # a restart, or a failing check
    h.observe(10.0, True)
    h.observe(19.0, True)
    assert h.healthy is None
    h.observe(20.0, True)
    assert h.healthy is True


def test_unhealthy_at_the_deadline_and_may_recover() -> None:
    h = tracker(min_healthy=5, deadline=30)
    h.observe(0.0, False)
    assert h.wake_at() == 30.0
    assert h.observe(30.0, False)
    assert h.healthy is False
    h.observe(31.0, True)
    assert h.observe(36.0, True)
    assert h.healthy is True


def test_healthy_is_sticky() -> None:
    h = tracker(min_healthy=0)
    assert h.observe(0.0, True)
    assert not h.observe(1.0, False)
    assert h.healthy is True


def test_from_update_reads_the_normalized_group() -> None:
    h = HealthTracker.from_update({"min_healthy_time": 2, "healthy_deadline": 9}, began=5.0)
    assert (h.min_healthy_time, h.healthy_deadline, h.began) == (2.0, 9.0, 5.0)


# --- the check runners against real local sockets -----------------------------------------


@pytest.fixture
async def web_server(unused_tcp_port: int):  # type: ignore[no-untyped-def]
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=503, text="down")

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    app = web.Application()
    app.add_routes(
        [
            web.get("/ok", ok),
            web.get("/moved", moved),
            web.get("/broken", broken),
            web.get("/slow", slow),
        ]
    )
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    try:
        yield unused_tcp_port
    finally:
        await runner.cleanup()


async def test_http_check_passes_on_2xx_and_3xx_only(web_server: int) -> None:
    ports = {"http": web_server}
    async with aiohttp.ClientSession() as session:

        async def check(path: str, timeout: float = 2) -> tuple[bool, str]:
            r = await run_check(
                {"type": "http", "port": "http", "path": path, "timeout": timeout},
                host_ip="127.0.0.1",
                ports=ports,
                session=session,
            )
            return r.passing, r.output

        assert (await check("/ok"))[0]
        assert (await check("/moved"))[0]  # 3xx passes, not followed
        passing, output = await check("/broken")
        assert not passing and "503" in output
        passing, output = await check("/slow", timeout=0.3)
        assert not passing and "timed out" in output


async def test_tcp_check(web_server: int, unused_tcp_port_factory) -> None:  # type: ignore[no-untyped-def]
    closed = unused_tcp_port_factory()
    good = await run_check(
        {"type": "tcp", "port": "p", "timeout": 1},
        host_ip="127.0.0.1",
        ports={"p": web_server},
        session=None,
    )
    assert good.passing
    bad = await run_check(
        {"type": "tcp", "port": "p", "timeout": 1},
        host_ip="127.0.0.1",
        ports={"p": closed},
        session=None,
    )
    assert not bad.passing


async def test_command_check_and_missing_port() -> None:
    async def runner(argv: list[str], timeout: float) -> tuple[int, str]:
        return (0 if argv == ["true"] else 1), "out"

    ok = await run_check(
        {"type": "command", "command": ["true"], "timeout": 1},
        host_ip="127.0.0.1",
        ports={},
        session=None,
        run_command=runner,
    )
    assert ok.passing
    bad = await run_check(
        {"type": "command", "command": ["false"], "timeout": 1},
        host_ip="127.0.0.1",
        ports={},
        session=None,
        run_command=runner,
    )
    assert not bad.passing and "exit code 1" in bad.output
    no_port = await run_check(
        {"type": "http", "port": "web", "timeout": 1}, host_ip="127.0.0.1", ports={}, session=None
    )
    assert not no_port.passing and "no host port" in no_port.output
