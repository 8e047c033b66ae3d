"""A challenge responder on 127.0.0.1 for the ACME tests: what the ingress proxies will be.

It is a real ``ChallengePublisher``: an aiohttp server answers
``/.well-known/acme-challenge/<token>`` with what was published (pebble's
validator connects to it as its ``httpPort``), and an asyncio TLS server
offering only ALPN ``acme-tls/1`` serves the published tls-alpn-01
certificate for the SNI name (pebble's ``tlsPort``). It records what the
validator asked and what was retracted, so tests can assert both.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from heroctld.controllers.acme.challenges import (
    ACME_TLS_ALPN_PROTOCOL,
    HTTP01_PREFIX,
    tls_alpn01_certificate,
)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _alpn_context(directory: Path, name: str, cert_pem: str, key_pem: str) -> ssl.SSLContext:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_text(cert_pem)
    _write_private(key_path, key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.set_alpn_protocols([ACME_TLS_ALPN_PROTOCOL])
    return context


@dataclass
class ChallengeResponder:
    """Serves published http-01 answers and tls-alpn-01 certificates; see the module doc."""

    directory: Path
    stall_http: bool = False  # hold every validation request open (the deadline test)
    http_answers: dict[str, str] = field(default_factory=dict)
    alpn_contexts: dict[str, ssl.SSLContext] = field(default_factory=dict)
    http_requests: list[str] = field(default_factory=list)
    alpn_handshakes: list[str] = field(default_factory=list)
    published: list[tuple[str, str]] = field(default_factory=list)
    retracted: list[tuple[str, str]] = field(default_factory=list)
    http_port: int = 0
    tls_port: int = 0
    _runner: web.AppRunner | None = None
    _tls_server: asyncio.Server | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> ChallengeResponder:
        app = web.Application()
        app.router.add_get(HTTP01_PREFIX + "{token}", self._http01)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.http_port = self._runner.addresses[0][1]

        fallback_cert, fallback_key = tls_alpn01_certificate("unknown.invalid", "none.none")
        base = _alpn_context(self.directory, "fallback", fallback_cert, fallback_key)
        base.sni_callback = self._select_certificate
        self._tls_server = await asyncio.start_server(
            self._tls_connection, "127.0.0.1", 0, ssl=base, ssl_handshake_timeout=5
        )
        self.tls_port = self._tls_server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._tls_server is not None:
            self._tls_server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tls_server.wait_closed(), 5)
        if self._runner is not None:
            await self._runner.cleanup()

    async def _http01(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        self.http_requests.append(f"{request.host} {token}")
        if self.stall_http:
            await self._release.wait()
        answer = self.http_answers.get(token)
        if answer is None:
            return web.Response(status=404, text="no such challenge")
        return web.Response(text=answer, content_type="application/octet-stream")

    def _select_certificate(
        self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        self.alpn_handshakes.append(server_name or "")
        context = self.alpn_contexts.get((server_name or "").lower())
        if context is not None:
            connection.context = context

    async def _tls_connection(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The validator only looks at the handshake; close once it is done.
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    # -- ChallengePublisher --------------------------------------------------------------------
    async def publish_http01(self, host: str, token: str, key_authorization: str) -> None:
        self.published.append(("http-01", host))
        self.http_answers[token] = key_authorization

    async def retract_http01(self, host: str, token: str) -> None:
        self.retracted.append(("http-01", host))
        self.http_answers.pop(token, None)

    async def publish_tls_alpn01(self, host: str, cert_pem: str, key_pem: str) -> None:
        self.published.append(("tls-alpn-01", host))
        self.alpn_contexts[host] = _alpn_context(self.directory, host, cert_pem, key_pem)

    async def retract_tls_alpn01(self, host: str) -> None:
        self.retracted.append(("tls-alpn-01", host))
        self.alpn_contexts.pop(host, None)


@dataclass
class TlsAlpnOnly:
    """A publisher for a cluster whose port 80 is closed: it says it answers tls-alpn-01 only."""

    responder: ChallengeResponder
    challenge_types: tuple[str, ...] = ("tls-alpn-01",)

    async def publish_http01(self, host: str, token: str, key_authorization: str) -> None:
        raise AssertionError("http-01 must not be used")

    async def retract_http01(self, host: str, token: str) -> None:
        raise AssertionError("http-01 must not be used")

    async def publish_tls_alpn01(self, host: str, cert_pem: str, key_pem: str) -> None:
        await self.responder.publish_tls_alpn01(host, cert_pem, key_pem)

    async def retract_tls_alpn01(self, host: str) -> None:
        await self.responder.retract_tls_alpn01(host)


@dataclass
class PublishesNothing:
    """A publisher that forgets to publish: the validator finds nothing (404)."""

    retracted: list[tuple[str, str]] = field(default_factory=list)

    async def publish_http01(self, host: str, token: str, key_authorization: str) -> None:
        return None

    async def retract_http01(self, host: str, token: str) -> None:
        self.retracted.append((host, token))
