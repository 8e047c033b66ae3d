"""How the client library talks HTTP to the API: one aiohttp session per
client, JSON bodies, the error envelope turned into `ApiClientError`, blocking
queries (`?index=N&wait=`) and server-sent event streams.

`HttpClient` knows paths and verbs only; `client.api_client.ApiClient` adds
one typed method per resource on top of it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any, Self

import aiohttp

from client.errors import ApiUnreachable, CertificateUntrusted, error_from

__all__ = [
    "DEFAULT_ADDRESS",
    "INDEX_HEADER",
    "HttpClient",
    "Params",
    "format_wait",
    "normalize_address",
    "response_index",
]

DEFAULT_ADDRESS = "http://127.0.0.1:7070"

INDEX_HEADER = "X-HeroCtl-Index"

Params = Mapping[str, str | int | float | bool | None]


def normalize_address(address: str) -> str:
    """`host:port` or a URL -> a base URL without a trailing slash."""
    address = address.strip().rstrip("/")
    if "://" not in address:
        address = "http://" + address
    return address


def _query(params: Params | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def format_wait(seconds: float) -> str:
    """Seconds -> the `wait=` form blocking queries take (`30s`, `1500ms`): in
    domain.durations' grammar, and in the older servers' too."""
    ms = max(1, int(round(seconds * 1000)))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def response_index(headers: Mapping[str, str]) -> int:
    """The raft index a read answered at (`X-HeroCtl-Index`); 0 when absent."""
    try:
        return int(headers.get(INDEX_HEADER, 0))
    except (TypeError, ValueError):
        return 0


def decode_body(raw: bytes) -> Any:
    """A response body: its JSON, or its text when it is not JSON."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _unreachable(address: str, e: aiohttp.ClientError) -> ApiUnreachable:
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        why = getattr(e.certificate_error, "verify_message", None) or str(e.certificate_error)
        return CertificateUntrusted(address, f"TLS certificate not trusted: {why}")
    return ApiUnreachable(address, failure_reason(e))


def failure_reason(e: aiohttp.ClientError) -> str:
    """Why a request got no HTTP answer, in words."""
    if not isinstance(e, aiohttp.ClientConnectorError):
        return str(e) or type(e).__name__
    if isinstance(e.os_error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e.os_error, socket.gaierror):
        return f"cannot resolve host {e.host!r}"
    return e.os_error.strerror or str(e.os_error) or str(e)


class HttpClient:
    """Async JSON over HTTP: `async with HttpClient(address, token) as http: ...`.

    An https server is verified against ``ca_file`` (the cluster's CA) when
    given, else the system's trust store."""

    DEFAULT_WAIT = 300.0  # seconds a blocking query waits when no `wait` is given

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        ca_file: str | None = None,
    ) -> None:
        self.address = normalize_address(address)
        self.token = token
        self.timeout = timeout
        self.ca_file = ca_file
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _session_for_loop(self) -> aiohttp.ClientSession:
        # Created lazily so the client can be constructed outside a running loop.
        if self._session is None or self._session.closed:
            headers = {"Accept": "application/json", "User-Agent": "heroctl"}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            # https: verified against the CA file (the cluster's), else the system's store.
            tls: ssl.SSLContext | bool = True
            if self.address.startswith("https:"):
                tls = ssl.create_default_context(cafile=self.ca_file)
            self._session = aiohttp.ClientSession(
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(ssl=tls),
            )
        return self._session

    def _url(self, path: str) -> str:
        return self.address + (path if path.startswith("/") else "/" + path)

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Params | None = None,
        *,
        timeout: float | None = None,
    ) -> tuple[Any, Mapping[str, str]]:
        """(decoded body, response headers); raises `ApiClientError` on any failure.

        `timeout` replaces the client's for this request (a blocking query
        may legitimately take as long as its `wait`).
        """
        url = self._url(path)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        session = self._session_for_loop()
        limit = self.timeout if timeout is None else timeout
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with session.request(
                method, url, data=data, params=_query(params), headers=headers, **extra
            ) as r:
                raw = await r.read()
                status, reason, resp_headers = r.status, r.reason or "", r.headers
        except TimeoutError:
            raise ApiUnreachable(self.address, f"no answer within {limit:g}s") from None
        except aiohttp.ClientError as e:
            raise _unreachable(self.address, e) from None
        payload = decode_body(raw) if raw else None
        if status >= 400:
            raise error_from(status, reason, payload, resp_headers)
        return payload, resp_headers

    async def get(
        self,
        path: str,
        body: Any = None,
        params: Params | None = None,
        *,
        index: int | None = None,
        wait: float | None = None,
    ) -> tuple[Any, Mapping[str, str]]:
        """A GET; with `index` it is a blocking query (see `blocking_get`)."""
        if index is None:
            return await self.request("GET", path, body, params)
        wait = self.DEFAULT_WAIT if wait is None else wait
        query = {**(params or {}), "index": index, "wait": format_wait(wait)}
        # The server adds up to wait/16 of jitter; then it still has to answer.
        timeout = wait * 17 / 16 + self.timeout
        return await self.request("GET", path, body, query, timeout=timeout)

    async def blocking_get(
        self,
        path: str,
        params: Params | None = None,
        *,
        index: int | None = None,
        wait: float | None = None,
    ) -> tuple[Any, int]:
        """(body, index) of a list/detail read.

        With `index` (the `X-HeroCtl-Index` of an earlier answer) the server
        answers as soon as its index passes it, or after `wait` seconds with
        the same index: pass the returned index to the next call.
        """
        payload, headers = await self.get(path, params=params, index=index, wait=wait)
        return payload, response_index(headers)

    async def wait_for_change(
        self, path: str, params: Params | None = None, *, wait: float
    ) -> tuple[Any, bool]:
        """Read `path`, then block until its body is different: (new body, True),
        or until `wait` seconds have passed: (the same body, False).

        The index moves on any change to the tables behind a read (another
        job's allocation, a node's status), so blocking queries are repeated
        with the remaining time until what this read returns really changed.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        body, index = await self.blocking_get(path, params)
        while (remaining := deadline - loop.time()) > 0:
            asked = loop.time()
            new, new_index = await self.blocking_get(path, params, index=index, wait=remaining)
            if new != body:
                return new, True
            if new_index <= index and loop.time() - asked < min(1.0, remaining / 2):
                # An answer at once with the same index: never spin on it.
                await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))
            index = max(index, new_index)
        return body, False

    async def post(
        self, path: str, body: Any = None, params: Params | None = None
    ) -> tuple[Any, Mapping[str, str]]:
        return await self.request("POST", path, body, params)

    async def delete(
        self, path: str, body: Any = None, params: Params | None = None
    ) -> tuple[Any, Mapping[str, str]]:
        return await self.request("DELETE", path, body, params)

    async def sse(self, path: str, params: Params | None = None) -> AsyncIterator[tuple[str, Any]]:
        """The events of a `text/event-stream` answer: (event, decoded data),
        until the server ends the stream (or the caller stops iterating)."""
        url = self._url(path)
        session = self._session_for_loop()
        try:
            async with session.get(
                url,
                params=_query(params),
                headers={"Accept": "text/event-stream"},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout),
            ) as r:
                if r.status >= 400:
                    payload = decode_body(await r.read())
                    raise error_from(r.status, r.reason or "", payload, r.headers)
                buf = b""
                event, data = "", []
                async for chunk in r.content.iter_any():
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for raw_line in lines:
                        line = raw_line.rstrip(b"\r").decode("utf-8", errors="replace")
                        if not line:
                            if data:
                                text = "\n".join(data)
                                try:
                                    yield event or "message", json.loads(text)
                                except ValueError:
                                    yield event or "message", text
                            event, data = "", []
                        elif line.startswith(":"):
                            continue  # a comment (keep-alive ping)
                        else:
                            name, _, value = line.partition(":")
                            value = value[1:] if value.startswith(" ") else value
                            if name == "event":
                                event = value
                            elif name == "data":
                                data.append(value)
        except aiohttp.ClientError as e:
            raise _unreachable(self.address, e) from None
