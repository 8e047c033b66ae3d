"""The supervisor harness (tests/agent/supervisor_harness.py) and the fake
control plane (tests/agent/control_plane.py) as fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.agent.control_plane import FakeControlPlane
from tests.agent.supervisor_harness import Harness


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    await harness.close()


@pytest.fixture
async def plane(unused_tcp_port: int) -> AsyncIterator[tuple[FakeControlPlane, str]]:
    cp = FakeControlPlane()
    runner = web.AppRunner(cp.app(), shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    try:
        yield cp, f"127.0.0.1:{unused_tcp_port}"
    finally:
        await runner.cleanup()
