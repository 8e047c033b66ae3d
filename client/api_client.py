"""The one HTTP client for the HeroCtl API, shared by the CLI and the node agent.

Everything outside the daemon reaches the cluster through this module, so the
error envelope (`{"error", "message", "request_id"}`) is decoded in one place
and callers only ever catch `ApiClientError`.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

__all__ = [
    "DEFAULT_ADDRESS",
    "INDEX_HEADER",
    "ApiClient",
    "ApiClientError",
    "ApiUnreachable",
    "format_wait",
    "response_index",
]

DEFAULT_ADDRESS = "http://127.0.0.1:7070"

INDEX_HEADER = "X-HeroCtl-Index"

Params = Mapping[str, str | int | float | bool | None]


class ApiClientError(Exception):
    """The API answered with an error (or, for `ApiUnreachable`, did not answer)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.headers: Mapping[str, str] = headers or {}

    def __str__(self) -> str:
        rid = f", request {self.request_id}" if self.request_id else ""
        return f"{self.message} ({self.code}{rid})"


class ApiUnreachable(ApiClientError):
    """No HTTP answer at all: refused, DNS, TLS, reset, or timed out (status 0)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(0, "unreachable", f"could not reach {address}: {reason}")
        self.address = address
        self.reason = reason


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
    """Seconds -> the `wait=` form blocking queries take (`30s`, `1500ms`)."""
    ms = max(1, int(round(seconds * 1000)))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def response_index(headers: Mapping[str, str]) -> int:
    """The raft index a read answered at (`X-HeroCtl-Index`); 0 when absent."""
    try:
        return int(headers.get(INDEX_HEADER, 0))
    except (TypeError, ValueError):
        return 0


def _error_from(
    status: int, reason: str, payload: Any, headers: Mapping[str, str]
) -> ApiClientError:
    rid = headers.get("X-Request-Id")
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return ApiClientError(
            status,
            payload["error"],
            str(payload.get("message") or reason),
            payload.get("request_id") or rid,
            headers,
        )
    # Not our envelope (a proxy in between, or a crash before the middleware).
    text = payload if isinstance(payload, str) else json.dumps(payload)
    message = f"HTTP {status} {reason}" + (f": {text.strip()[:200]}" if text.strip() else "")
    return ApiClientError(status, f"http_{status}", message, rid, headers)


def _decode(raw: bytes) -> Any:
    """A response body: its JSON, or its text when it is not JSON."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _failure_reason(e: aiohttp.ClientError) -> str:
    """Why a request got no HTTP answer, in words."""
    if not isinstance(e, aiohttp.ClientConnectorError):
        return str(e) or type(e).__name__
    if isinstance(e.os_error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e.os_error, socket.gaierror):
        return f"cannot resolve host {e.host!r}"
    return e.os_error.strerror or str(e.os_error) or str(e)


class ApiClient:
    """Async JSON client: `async with ApiClient(address, token) as api: ...`."""

    DEFAULT_WAIT = 300.0  # seconds a blocking query waits when no `wait` is given

    def __init__(
        self, address: str = DEFAULT_ADDRESS, token: str | None = None, *, timeout: float = 60.0
    ) -> None:
        self.address = normalize_address(address)
        self.token = token
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
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
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)
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
            raise ApiUnreachable(self.address, _failure_reason(e)) from None
        payload = _decode(raw) if raw else None
        if status >= 400:
            raise _error_from(status, reason, payload, resp_headers)
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

    # --- typed helpers: the body only ------------------------------------
    async def cluster_status(self) -> dict[str, Any]:
        return (await self.get("/v1/cluster/status"))[0]

    async def cluster_peers(self) -> list[dict[str, Any]]:
        return (await self.get("/v1/cluster/peers"))[0]

    async def transfer_leadership(self, to: str | None = None) -> dict[str, Any]:
        body = {"to": to} if to else None
        return (await self.post("/v1/raft/transfer-leadership", body))[0]

    async def add_peer(
        self, raft_address: str, name: str | None = None, api_address: str | None = None
    ) -> dict[str, Any]:
        body = {"raft_address": raft_address, "name": name, "api_address": api_address}
        return (await self.post("/v1/cluster/peers", {k: v for k, v in body.items() if v}))[0]

    async def remove_peer(self, name: str) -> dict[str, Any]:
        return (await self.delete(f"/v1/cluster/peers/{quote(name, safe='')}"))[0]

    async def list_jobs(self) -> list[dict[str, Any]]:
        return (await self.get("/v1/jobs"))[0]

    async def get_job(self, name: str) -> dict[str, Any]:
        return (await self.get(f"/v1/jobs/{quote(name, safe='')}"))[0]

    async def job_versions(self, name: str) -> list[dict[str, Any]]:
        return (await self.get(f"/v1/jobs/{quote(name, safe='')}/versions"))[0]

    async def submit_job(
        self, spec: dict[str, Any], job_modify_index: int | None = None
    ) -> dict[str, Any]:
        body = dict(spec)
        if job_modify_index is not None:
            body["job_modify_index"] = job_modify_index
        return (await self.post("/v1/jobs", body))[0]

    async def delete_job(self, name: str) -> dict[str, Any]:
        return (await self.delete(f"/v1/jobs/{quote(name, safe='')}"))[0]

    # nodes ------------------------------------------------------------------
    async def list_nodes(self) -> list[dict[str, Any]]:
        return (await self.get("/v1/nodes"))[0]

    async def get_node(self, ref: str) -> dict[str, Any]:
        """A node by id or name."""
        return (await self.get(f"/v1/nodes/{quote(ref, safe='')}"))[0]

    async def drain_node(
        self,
        ref: str,
        deadline_seconds: int | None = None,
        *,
        enable: bool = True,
        keep_ineligible: bool = False,
    ) -> dict[str, Any]:
        """Start a drain (the server's default deadline when None), or cancel it."""
        body: dict[str, Any]
        if enable:
            body = {} if deadline_seconds is None else {"deadline_seconds": deadline_seconds}
        else:
            body = {"enable": False, "keep_ineligible": keep_ineligible}
        return (await self.post(f"/v1/nodes/{quote(ref, safe='')}/drain", body))[0]

    async def node_eligibility(self, ref: str, eligible: bool) -> dict[str, Any]:
        path = f"/v1/nodes/{quote(ref, safe='')}/eligibility"
        return (await self.post(path, {"eligible": eligible}))[0]

    # allocations --------------------------------------------------------------
    async def list_allocations(
        self, job: str | None = None, node: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"job": job, "node": node, "status": status}
        return (await self.get("/v1/allocations", params=params))[0]

    async def get_allocation(self, alloc_id: str) -> dict[str, Any]:
        """An allocation by id or unique prefix (4 characters or more)."""
        return (await self.get(f"/v1/allocations/{quote(alloc_id, safe='')}"))[0]

    async def stop_allocation(self, alloc_id: str) -> dict[str, Any]:
        return (await self.post(f"/v1/allocations/{quote(alloc_id, safe='')}/stop"))[0]

    # logs and metrics -----------------------------------------------------------
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
                    payload = _decode(await r.read())
                    raise _error_from(r.status, r.reason or "", payload, r.headers)
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
            raise ApiUnreachable(self.address, _failure_reason(e)) from None

    async def logs(
        self,
        alloc: str | None = None,
        *,
        job: str | None = None,
        lines: int | str | None = None,
        stream: str | None = None,
        task: str | None = None,
    ) -> list[dict[str, Any]]:
        """The last lines of an allocation (id or prefix) or of a whole job."""
        path, params = _logs_target(alloc, job, {"lines": lines, "type": stream, "task": task})
        return (await self.get(path, params=params))[0]

    def follow_logs(
        self,
        alloc: str | None = None,
        *,
        job: str | None = None,
        lines: int | str | None = None,
        stream: str | None = None,
        task: str | None = None,
        since: int | None = None,
    ) -> AsyncIterator[tuple[str, Any]]:
        """Live lines (`("log", {...})`, and `error`/`dropped` notices) of an
        allocation or of every allocation of a job, after the last `lines`
        (or, with `since` in unix microseconds, every line after it)."""
        path, params = _logs_target(
            alloc,
            job,
            {"lines": lines, "type": stream, "task": task, "stream": True, "since": since},
        )
        return self.sse(path, params)

    async def metrics(self) -> dict[str, Any]:
        """The cluster snapshot (nodes, jobs, allocations, raft, API rate)."""
        return (await self.get("/v1/metrics"))[0]

    async def metrics_query(
        self,
        metric: str,
        *,
        job: str | None = None,
        node: str | None = None,
        alloc: str | None = None,
        start: str | None = None,
        end: str | None = None,
        step: str | None = None,
    ) -> dict[str, Any]:
        """Time series of `metric` (cpu, memory, disk, ...) for a job, a node,
        an allocation or every node; `start`/`end` as `-1h`, `now`, RFC 3339."""
        params = {
            "metric": metric,
            "job": job,
            "node": node,
            "alloc": alloc,
            "from": start,
            "to": end,
            "step": step,
        }
        return (await self.get("/v1/metrics/query", params=params))[0]


def _logs_target(alloc: str | None, job: str | None, params: Params) -> tuple[str, Params]:
    """An allocation's logs (id or prefix), else every allocation of `job`."""
    if alloc is not None:
        return f"/v1/logs/{quote(alloc, safe='')}", params
    return "/v1/logs", {**params, "job": job}
