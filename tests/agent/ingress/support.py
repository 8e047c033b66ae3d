"""Real parts for the ingress tests: a test CA, aiohttp upstreams, a client
that resolves every ``*.test`` name to 127.0.0.1, a bare HTTP/2 request."""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.ports import free_port

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
    """Retry ``check`` until it returns without AssertionError (or raise the last one)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except (AssertionError, aiohttp.ClientError, OSError):
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class TestCA:
    """A CA of our own; ``issue`` signs a server certificate for some names."""

    __test__ = False

    def __init__(self, folder: Path) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "heroctl ingress test CA")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.file = folder / "test-ca.pem"
        self.file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, *names: str) -> tuple[str, str]:
        """A leaf (PEM cert, PEM key) for ``names``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            )
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode(), _pem(key)

    def client_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.file))
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx

    def server_context(self, *names: str, folder: Path) -> ssl.SSLContext:
        cert_pem, key_pem = self.issue(*names)
        cert_file, key_file = folder / f"{names[0]}.crt", folder / f"{names[0]}.key"
        cert_file.write_text(cert_pem)
        key_file.write_text(key_pem)
        key_file.chmod(0o600)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert_file), str(key_file))
        return ctx


@dataclass
class Upstream:
    """An aiohttp server on 127.0.0.1 that says who it is and what it got."""

    name: str
    port: int
    runner: web.AppRunner

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_upstream(name: str, tls: ssl.SSLContext | None = None) -> Upstream:
    async def echo(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await ws.send_str(f"{name}:{msg.data}")
            return ws
        if request.path.endswith("/big"):
            return web.Response(body=b"x" * 5_000_000)
        body = await request.read()
        return web.json_response(
            {
                "upstream": name,
                "path": request.path_qs,
                "received": len(body),
                "headers": {k.lower(): v for k, v in request.headers.items()},
            }
        )

    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
    return Upstream(name, port, runner)


class TestResolver(AbstractResolver):
    """Every name resolves to 127.0.0.1 (the ingress under test)."""

    __test__ = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


def client(ca: TestCA | None = None) -> aiohttp.ClientSession:
    """A session whose names all lead to 127.0.0.1, verifying HTTPS against ``ca``."""
    ssl_ctx: ssl.SSLContext | bool = ca.client_context() if ca else True
    connector = aiohttp.TCPConnector(resolver=TestResolver(), ssl=ssl_ctx, force_close=True)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=15))


async def get_json(session: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    async with session.get(url, allow_redirects=False, **kw) as r:
        ctype = r.headers.get("Content-Type", "")
        body = await r.json() if "json" in ctype else await r.text()
        return r.status, body


async def h2_get(port: int, host: str, path: str, ctx: ssl.SSLContext) -> tuple[str | None, int]:
    """One HTTP/2 GET by hand (no h2 library here): the ALPN protocol agreed
    and the first HPACK byte of the response's HEADERS (0x88 = :status 200)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=host)
    try:
        alpn = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        if alpn != "h2":
            return alpn, 0

        def literal(index: int, value: str) -> bytes:  # literal, not indexed, no Huffman
            raw = value.encode()
            assert len(raw) < 127
            return bytes([index, len(raw)]) + raw

        block = b"\x82\x87" + literal(4, path) + literal(1, host)  # GET https path authority
        frames = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + struct.pack(">I", 0)[1:] + b"\x04\x00"
        frames += struct.pack(">I", 0)
        frames += struct.pack(">I", len(block))[1:] + b"\x01\x05" + struct.pack(">I", 1) + block
        writer.write(frames)
        await writer.drain()
        while True:
            head = await asyncio.wait_for(reader.readexactly(9), 10)
            length = int.from_bytes(head[:3], "big")
            kind, stream = head[3], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
            payload = await reader.readexactly(length)
            if kind == 0x1 and stream == 1:
                return alpn, payload[0]
    finally:
        writer.close()


def processes_holding(prefix: Path) -> list[int]:
    """Processes with a file under ``prefix`` open (nginx's master and workers)."""
    root = f"{prefix}/"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}").startswith(root):
                    found.append(int(entry))
                    break
            except OSError:
                continue
    return found
