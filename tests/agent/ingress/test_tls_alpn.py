"""tls-alpn-01 through one real nginx: while a challenge is pending, the HTTPS
port answers a client offering only ``acme-tls/1`` with the challenge
certificate of the name it asks for, and everything else exactly as before
(the site's certificate, HTTP/2, the client's own address), through the
stream hop; without a challenge there is no hop at all. Real aiohttp
upstreams, real TLS handshakes, all on 127.0.0.1 (clients also from
127.0.0.2, so the address that reaches the upstream says whose it is)."""

from __future__ import annotations

import asyncio
import signal
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import aiohttp
import pytest
import pytest_asyncio
from cryptography import x509

from agent.ingress import IngressConfig, Listeners, NginxSupervisor, Route, Site
from agent.ingress.process import kill_group
from heroctld.controllers.acme.challenges import ACME_IDENTIFIER_OID, tls_alpn01_certificate
from tests.agent.ingress.support import (
    TestCA,
    TestResolver,
    Upstream,
    eventually,
    free_port,
    get_json,
    h2_get,
    start_upstream,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

ACME_TLS = "acme-tls/1"
OTHER_CLIENT = "127.0.0.2"  # a client address that is not the ingress's own
PROXIED = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n"


@dataclass
class Alpn:
    sup: NginxSupervisor
    ca: TestCA
    up: Upstream
    base: IngressConfig  # no challenge pending
    pending: IngressConfig  # challenges for secure.test and fresh.test
    challenge: dict[str, tuple[str, str]]

    @property
    def https(self) -> int:
        return self.base.listeners.https_port

    def live_conf(self) -> str:
        return self.sup.paths.live_conf.read_text()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def alpn(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Alpn]:
    folder = tmp_path_factory.mktemp("ingress-alpn")
    ca = TestCA(folder)
    up = await start_upstream("a")
    sup = NginxSupervisor(folder / "prefix")
    if sup.alpn_unavailable is not None:  # the Makefile installs libnginx-mod-stream
        pytest.fail(sup.alpn_unavailable)
    try:
        cert, key = ca.issue("secure.test")
        sites = (
            Site("secure.test", (Route("/", (up.address,)),), True, cert, key),
            Site("plain.test", (Route("/", (up.address,)),), tls=False),
        )
        listeners = Listeners("127.0.0.1", free_port(), free_port(), worker_processes=1)
        base = IngressConfig(listeners, sites, {"tok": "tok.thumb"})
        challenge = {
            "secure.test": tls_alpn01_certificate("secure.test", "tok-s.thumb"),
            "fresh.test": tls_alpn01_certificate("fresh.test", "tok-f.thumb"),
        }
        pending = replace(base, alpn_challenges=challenge)
        await sup.start(base)
        yield Alpn(sup, ca, up, base, pending, challenge)
    finally:
        await sup.close()
        await up.close()


async def handshake(
    port: int, host: str, alpn: list[str], header: bytes | None = None
) -> tuple[str | None, x509.Certificate]:
    """A TLS handshake offering ``alpn`` for ``host`` (after a PROXY header when
    given): the protocol agreed and the certificate shown. Raises on refusal."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # a challenge certificate is self-signed on purpose
    ctx.set_alpn_protocols(alpn)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if header is not None:
            writer.write(header)
            await writer.drain()
        await asyncio.wait_for(writer.start_tls(ctx, server_hostname=host), 10)
        tls = writer.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True)
        return tls.selected_alpn_protocol(), x509.load_der_x509_certificate(der)
    finally:
        writer.close()


def pem_cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def from_other_client(ca: TestCA) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        resolver=TestResolver(),
        ssl=ca.client_context(),
        force_close=True,
        local_addr=(OTHER_CLIENT, 0),
    )
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=15))


async def test_without_a_challenge_there_is_no_hop(alpn: Alpn) -> None:
    text = alpn.live_conf()
    assert "stream {" not in text and "load_module" not in text and "unix:" not in text
    assert f"listen 127.0.0.1:{alpn.https} default_server ssl http2;" in text
    # acme-tls/1 is a protocol the http servers do not speak: the handshake fails.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await handshake(alpn.https, "secure.test", [ACME_TLS])


async def test_a_pending_challenge_is_answered_and_https_is_served_as_before(alpn: Alpn) -> None:
    started = time.monotonic()
    result = await alpn.sup.apply(alpn.pending)
    print(f"\napply with the hop: {time.monotonic() - started:.3f}s")
    assert (result.changed, result.error) == (True, None)
    text = alpn.live_conf()
    assert text.splitlines()[1].startswith("load_module ") and "\nstream {" in text
    for host, (cert_pem, _) in alpn.challenge.items():
        protocol, shown = await handshake(alpn.https, host, [ACME_TLS])
        assert protocol == ACME_TLS and shown == pem_cert(cert_pem)
        assert shown.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID).critical
    # A name without a challenge, or a client offering more than acme-tls/1,
    # goes to the http servers: never a challenge certificate.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await handshake(alpn.https, "plain.test", [ACME_TLS])
    protocol, shown = await handshake(alpn.https, "secure.test", ["h2", ACME_TLS])
    assert protocol == "h2" and shown == pem_cert(alpn.pending.sites[0].cert_pem or "")
    # HTTPS (verified), HTTP/2, and the client's address through the hop.
    async with from_other_client(alpn.ca) as s:
        spoofed = {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6"}
        status, body = await get_json(s, f"https://secure.test:{alpn.https}/x", headers=spoofed)
        assert status == 200 and body["upstream"] == "a", body
        assert body["headers"]["x-real-ip"] == OTHER_CLIENT
        assert body["headers"]["x-forwarded-for"] == OTHER_CLIENT
        assert body["headers"]["x-forwarded-proto"] == "https"
        port = alpn.base.listeners.http_port
        status, body = await get_json(s, f"http://plain.test:{port}/.well-known/acme-challenge/tok")
        assert (status, body.strip()) == (200, "tok.thumb")  # http-01 is untouched
    h2 = await h2_get(alpn.https, "secure.test", "/h2", alpn.ca.client_context(["h2"]))
    assert h2 == ("h2", 0x88)


async def test_with_proxy_protocol_only_a_trusted_balancer_is_believed(alpn: Alpn) -> None:
    for trusted, expected in ((("127.0.0.1/32",), "203.0.113.7"), (("10.0.0.0/8",), "127.0.0.1")):
        listeners = replace(alpn.base.listeners, proxy_protocol=True, trusted_proxies=trusted)
        result = await alpn.sup.apply(replace(alpn.pending, listeners=listeners))
        assert (result.changed, result.error) == (True, None)
        # The validator relayed by the balancer still gets its certificate.
        protocol, shown = await handshake(alpn.https, "fresh.test", [ACME_TLS], PROXIED)
        assert protocol == ACME_TLS and shown == pem_cert(alpn.challenge["fresh.test"][0])
        reader, writer = await asyncio.open_connection("127.0.0.1", alpn.https)
        try:
            writer.write(PROXIED)
            await writer.drain()
            await writer.start_tls(alpn.ca.client_context(), server_hostname="secure.test")
            writer.write(b"GET /who HTTP/1.1\r\nHost: secure.test\r\nConnection: close\r\n\r\n")
            raw = await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()
        assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
        assert f'"x-real-ip": "{expected}"'.encode() in raw, (trusted, raw[-400:])
    result = await alpn.sup.apply(alpn.pending)  # back to no balancer
    assert (result.changed, result.error) == (True, None)


async def test_a_killed_nginx_restarts_with_the_hop_despite_its_stale_sockets(
    alpn: Alpn,
) -> None:
    assert "\nstream {" in alpn.live_conf()
    sockets = sorted(p.name for p in alpn.sup.paths.sockets_dir.glob("*.sock"))
    assert sockets == ["alpn-0.sock", "alpn-1.sock", "https.sock"]
    old = alpn.sup.pid
    assert old is not None
    kill_group(old, signal.SIGKILL)  # the sockets' files stay behind

    async def answers_again() -> None:
        assert alpn.sup.pid not in (None, old)
        protocol, shown = await handshake(alpn.https, "secure.test", [ACME_TLS])
        assert protocol == ACME_TLS and shown == pem_cert(alpn.challenge["secure.test"][0])

    await eventually(answers_again, timeout=30)


async def test_retracting_the_challenges_removes_the_hop(alpn: Alpn) -> None:
    one_left = replace(alpn.base, alpn_challenges={"fresh.test": alpn.challenge["fresh.test"]})
    assert (await alpn.sup.apply(one_left)).changed
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await handshake(alpn.https, "secure.test", [ACME_TLS])
    started = time.monotonic()
    result = await alpn.sup.apply(alpn.base)
    print(f"\napply without the hop: {time.monotonic() - started:.3f}s")
    assert (result.changed, result.error) == (True, None)
    assert "stream {" not in alpn.live_conf()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await handshake(alpn.https, "fresh.test", [ACME_TLS])
    assert list(alpn.sup.paths.sockets_dir.glob("*.sock")) == []
    # The challenge files went with the configuration that named them.
    assert not [p for p in alpn.sup.paths.certs_dir.iterdir() if p.name.startswith("_alpn_.")]
    async with from_other_client(alpn.ca) as s:
        status, body = await get_json(s, f"https://secure.test:{alpn.https}/")
        assert status == 200 and body["headers"]["x-real-ip"] == OTHER_CLIENT
