"""PROXY protocol on both listeners: the client address a trusted load
balancer's header carries becomes the client's address; anyone else's is not
believed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from agent.ingress import IngressConfig, Listeners, NginxSupervisor, Route, Site
from tests.agent.ingress.support import TestCA, Upstream, free_port, start_upstream

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Setup:
    sup: NginxSupervisor
    ca: TestCA
    up: Upstream
    sites: tuple[Site, ...]
    listeners: Listeners


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    folder = tmp_path_factory.mktemp("ingress-pp")
    ca = TestCA(folder)
    up = await start_upstream("pp")
    cert, key = ca.issue("secure.test")
    sites = (
        Site("plain.test", (Route("/", (up.address,)),), tls=False),
        Site("secure.test", (Route("/", (up.address,)),), True, cert, key),
    )
    listeners = Listeners(
        "127.0.0.1",
        free_port(),
        free_port(),
        proxy_protocol=True,
        trusted_proxies=("127.0.0.1/32",),
        worker_processes=1,
    )
    sup = NginxSupervisor(folder / "prefix")
    try:
        await sup.start(IngressConfig(listeners, sites))
        yield Setup(sup, ca, up, sites, listeners)
    finally:
        await sup.close()
        await up.close()


async def proxied_get(
    setup: Setup, host: str, *, tls: bool, header: bytes | None
) -> tuple[int, Any]:
    """A request as a load balancer would relay it: PROXY header, then (TLS and) HTTP."""
    port = setup.listeners.https_port if tls else setup.listeners.http_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if header is not None:
            writer.write(header)
            await writer.drain()
        if tls:
            await writer.start_tls(setup.ca.client_context(), server_hostname=host)
        writer.write(f"GET /who HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    if not raw:
        return 0, None
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(body) if status == 200 else body


CLIENT = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n"


async def test_a_trusted_proxy_header_sets_the_client_address(setup: Setup) -> None:
    for host, tls in (("plain.test", False), ("secure.test", True)):
        status, body = await proxied_get(setup, host, tls=tls, header=CLIENT)
        assert status == 200, body
        assert body["headers"]["x-real-ip"] == "203.0.113.7"
        assert body["headers"]["x-forwarded-for"] == "203.0.113.7"
        assert body["headers"]["x-forwarded-proto"] == ("https" if tls else "http")


async def test_a_connection_without_the_header_is_refused(setup: Setup) -> None:
    status, _ = await proxied_get(setup, "plain.test", tls=False, header=None)
    assert status in (0, 400)


async def test_an_untrusted_proxy_is_not_believed(setup: Setup) -> None:
    untrusted = Listeners(
        "127.0.0.1",
        setup.listeners.http_port,
        setup.listeners.https_port,
        proxy_protocol=True,
        trusted_proxies=("10.0.0.0/8",),
        worker_processes=1,
    )
    result = await setup.sup.apply(IngressConfig(untrusted, setup.sites))
    assert (result.changed, result.error) == (True, None)
    status, body = await proxied_get(setup, "plain.test", tls=False, header=CLIENT)
    assert status == 200 and body["headers"]["x-real-ip"] == "127.0.0.1"
    assert body["headers"]["x-forwarded-for"] == "127.0.0.1"
