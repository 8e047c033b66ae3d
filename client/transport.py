"""How the client library talks HTTP to the API: one aiohttp session per
client, JSON bodies, the error envelope turned into `ApiClientError`, blocking
queries (`?index=N&wait=`) and server-sent event streams.

A client may be given several servers (`"https://a:7070,https://b:7070"`):
a request goes to the one that answered last and fails over to the others
when it cannot be had there; 429 and 503 are retried with backoff under a
`RetryPolicy` (client.retry says exactly when, for which methods).

`HttpClient` knows paths and verbs only; `client.api_client.ApiClient` adds
one typed method per resource on top of it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Self

import aiohttp

from client.errors import ApiUnreachable, CertificateUntrusted, error_from
from client.retry import (
    IDEMPOTENT_METHODS,
    Outcome,
    RetryPolicy,
    Tries,
    TryFailed,
    answer_outcome,
    connection_outcome,
    reported_error,
    retry_after_seconds,
)
from client.sse import sse_events

__all__ = [
    "DEFAULT_ADDRESS",
    "INDEX_HEADER",
    "HttpClient",
    "Params",
    "format_wait",
    "normalize_address",
    "parse_addresses",
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


def parse_addresses(addresses: str | Sequence[str]) -> list[str]:
    """Servers given as `a,b,c` (or a list): base URLs, in order, without repeats."""
    items = addresses.split(",") if isinstance(addresses, str) else list(addresses)
    out: list[str] = []
    for item in items:
        if item.strip() and (url := normalize_address(item)) not in out:
            out.append(url)
    if not out:
        raise ValueError("no server address given")
    return out


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

    ``address``: one server, or several (a list, or `a,b,c`) to fail over
    between. An https server is verified against ``ca_file`` (the cluster's
    CA) when given, else the system's trust store. ``retry``: how 429 and 503
    are retried (None: never paused for; several servers are still each
    tried once, see client.retry)."""

    DEFAULT_WAIT = 300.0  # seconds a blocking query waits when no `wait` is given

    def __init__(
        self,
        address: str | Sequence[str] = DEFAULT_ADDRESS,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        ca_file: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.addresses = parse_addresses(address)
        self.token = token
        self.timeout = timeout
        self.ca_file = ca_file
        self.retry = retry
        self._current = 0  # the server that answered last
        self._session: aiohttp.ClientSession | None = None

    @property
    def address(self) -> str:
        """The server requests go to first (the one that answered last)."""
        return self.addresses[self._current]

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
            if any(a.startswith("https:") for a in self.addresses):
                tls = ssl.create_default_context(cafile=self.ca_file)
            self._session = aiohttp.ClientSession(
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(ssl=tls),
            )
        return self._session

    def _url(self, path: str, base: str | None = None) -> str:
        return (base or self.address) + (path if path.startswith("/") else "/" + path)

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Params | None = None,
        *,
        timeout: float | None = None,
        idempotent: bool | None = None,
        raw: bytes | None = None,
        binary: bool = False,
    ) -> tuple[Any, Mapping[str, str]]:
        """(decoded body, response headers); raises `ApiClientError` on any failure.

        `timeout` replaces the client's for each try (a blocking query may
        legitimately take as long as its `wait`). `idempotent`: whether the
        request may be sent again after a lost answer (default: by method;
        a POST that repeating changes nothing more, like a job submit without
        check-and-set, says True). `raw`: bytes sent as they are
        (application/octet-stream) instead of `body` as JSON; `binary`: the
        answer's bytes are returned undecoded (errors are still the envelope).
        """
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        content_type = "application/octet-stream" if raw is not None else "application/json"
        loop = asyncio.get_running_loop()
        tries = Tries(
            servers=len(self.addresses),
            first=self._current,
            policy=self.retry,
            idempotent=method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent,
            started=loop.time(),
        )
        failures: list[TryFailed] = []
        while True:
            base = self.addresses[tries.current]
            try:
                answer = await self._try(
                    base, method, path, data, params, timeout, content_type, binary
                )
            except TryFailed as failed:
                failures.append(failed)
                retry_after = retry_after_seconds(failed.error.headers)
                step = tries.after(failed.outcome, retry_after, loop.time())
            else:
                self._current = tries.current
                return answer
            if step is None:
                raise reported_error(failures) from None
            _, pause = step
            if pause > 0:
                await asyncio.sleep(pause)

    async def _try(
        self,
        base: str,
        method: str,
        path: str,
        data: bytes | None,
        params: Params | None,
        timeout: float | None,
        content_type: str = "application/json",
        binary: bool = False,
    ) -> tuple[Any, Mapping[str, str]]:
        """One try on one server; its failure carries an `outcome` for client.retry."""
        headers = {"Content-Type": content_type} if data is not None else None
        session = self._session_for_loop()
        limit = self.timeout if timeout is None else timeout
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with session.request(
                method,
                self._url(path, base),
                data=data,
                params=_query(params),
                headers=headers,
                **extra,
            ) as r:
                raw = await r.read()
                status, reason, resp_headers = r.status, r.reason or "", r.headers
        except TimeoutError:
            error = ApiUnreachable(base, f"no answer within {limit:g}s")
            raise TryFailed(error, Outcome.FINAL) from None
        except aiohttp.ClientError as e:
            raise TryFailed(_unreachable(base, e), connection_outcome(e)) from None
        payload = decode_body(raw) if raw and (binary is False or status >= 400) else None
        if status >= 400:
            error = error_from(status, reason, payload, resp_headers)
            raise TryFailed(error, answer_outcome(status, resp_headers))
        return (raw if binary else payload), resp_headers

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
        self,
        path: str,
        body: Any = None,
        params: Params | None = None,
        *,
        idempotent: bool | None = None,
    ) -> tuple[Any, Mapping[str, str]]:
        return await self.request("POST", path, body, params, idempotent=idempotent)

    async def delete(
        self, path: str, body: Any = None, params: Params | None = None
    ) -> tuple[Any, Mapping[str, str]]:
        return await self.request("DELETE", path, body, params)

    async def sse(self, path: str, params: Params | None = None) -> AsyncIterator[tuple[str, Any]]:
        """The events of a `text/event-stream` answer: (event, decoded data),
        until the server ends the stream (or the caller stops iterating).

        Opening the stream fails over to the next server on a refusal or a
        503; a stream that broke once open is not resumed here."""
        session = self._session_for_loop()
        failures: list[TryFailed] = []
        for k in range(len(self.addresses)):
            index = (self._current + k) % len(self.addresses)
            base = self.addresses[index]
            opened = False
            try:
                async with session.get(
                    self._url(path, base),
                    params=_query(params),
                    headers={"Accept": "text/event-stream"},
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout),
                ) as r:
                    if r.status >= 400:
                        payload = decode_body(await r.read())
                        error = error_from(r.status, r.reason or "", payload, r.headers)
                        if r.status != 503:
                            raise error
                        failures.append(TryFailed(error, Outcome.BUSY))
                        continue
                    opened = True
                    self._current = index
                    async for event in sse_events(r):
                        yield event
                    return
            except aiohttp.ClientError as e:
                outcome = connection_outcome(e)
                if opened or outcome is not Outcome.REFUSED:
                    raise _unreachable(base, e) from None
                failures.append(TryFailed(_unreachable(base, e), outcome))
        raise reported_error(failures)
