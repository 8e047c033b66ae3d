"""The supervisor harness as a fixture (tests/agent/supervisor_harness.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.agent.supervisor_harness import Harness


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    await harness.close()
