"""A real pebble whose validator reaches a real challenge responder, both on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from heroctld.controllers.acme import AcmeSettings
from tests.heroctld.controllers.acme.responder import ChallengeResponder
from tests.support.pebble import Pebble, pebble_server  # noqa: F401  (the fixture)


@pytest.fixture
async def responder(tmp_path: Path) -> AsyncIterator[ChallengeResponder]:
    directory = tmp_path / "responder"
    directory.mkdir()
    started = await ChallengeResponder(directory).start()
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
def pebble(pebble_server: Callable[..., Pebble], responder: ChallengeResponder) -> Pebble:  # noqa: F811
    return pebble_server(http_port=responder.http_port, tls_port=responder.tls_port)


@pytest.fixture
def settings(pebble: Pebble) -> AcmeSettings:
    return AcmeSettings(
        directory=pebble.directory_url,
        email="ops@example.test",
        ca_bundle=pebble.ca_bundle,
        poll_interval=0.05,
        timeout=20.0,
    )
