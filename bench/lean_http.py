"""A lean HTTP/1.1 keep-alive client for the load generators.

The servers are what we measure; the generators share the same 2 cores, so
every microsecond a generator spends per request is taken from the servers.
aiohttp's client costs ≈0.2 ms of CPU per request; this one sends prebuilt
request bytes over an asyncio Protocol and parses only the status line,
Content-Length (or a chunked body) and nothing else: ≈0.03 ms. Like `wrk`
or etcd's `benchmark`, it is a measuring tool, not a general client. An
https URL is spoken over TLS (the handshake once per kept-alive connection).
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

__all__ = ["LeanConnection", "build_request", "split_url"]


def split_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


def build_request(
    method: str, host: str, path: str, body: bytes | None, headers: dict[str, str]
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = exc or ConnectionResetError("connection closed")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.closed)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        status = self._parse()
        if status is not None:
            self.waiter.set_result(status)

    def _parse(self) -> int | None:
        """The status of one complete response at the buffer's start (consumed)."""
        buf = self.buffer
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buf[:end]).decode("latin-1")
        status = int(head[9:12])
        length = -1
        chunked = False
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        start = end + 4
        if chunked:
            stop = buf.find(b"\r\n0\r\n\r\n", start - 2)
            if stop < 0:
                return None
            del buf[: stop + 7]
        else:
            length = max(length, 0)
            if len(buf) < start + length:
                return None
            del buf[: start + length]
        return status


def _expire(waiter: asyncio.Future[int]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no response in time"))


class LeanConnection:
    """One kept-alive connection; one request at a time; TLS with ``tls``."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.host, self.port, self.tls = host, port, tls
        self._proto: _Protocol | None = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(_Protocol, self.host, self.port, ssl=self.tls)
        return proto

    async def request(self, raw: bytes, timeout: float) -> int:
        """Send prebuilt request bytes; the response's status."""
        proto = self._proto
        if proto is None or proto.closed is not None:
            proto = self._proto = await asyncio.wait_for(self._connect(), timeout)
        assert proto.transport is not None
        loop = asyncio.get_running_loop()
        waiter = proto.waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter)
        proto.transport.write(raw)
        try:
            return await waiter
        except BaseException:
            self.close()
            raise
        finally:
            timer.cancel()

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None
