"""The one HTTP client for the HeroCtl API, shared by the CLI and the node agent.

Everything outside the daemon reaches the cluster through this module, so the
error envelope (`{"error", "message", "request_id"}`) is decoded in one place
and callers only ever catch `ApiClientError`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

__all__ = ["DEFAULT_ADDRESS", "ApiClient", "ApiClientError", "ApiUnreachable"]

DEFAULT_ADDRESS = "http://127.0.0.1:7070"

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


def _connect_reason(e: aiohttp.ClientConnectorError) -> str:
    if isinstance(e.os_error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e.os_error, socket.gaierror):
        return f"cannot resolve host {e.host!r}"
    return e.os_error.strerror or str(e.os_error) or str(e)


class ApiClient:
    """Async JSON client: `async with ApiClient(address, token) as api: ...`."""

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

    async def request(
        self, method: str, path: str, body: Any = None, params: Params | None = None
    ) -> tuple[Any, Mapping[str, str]]:
        """(decoded body, response headers); raises `ApiClientError` on any failure."""
        url = self.address + (path if path.startswith("/") else "/" + path)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        session = self._session_for_loop()
        try:
            async with session.request(
                method, url, data=data, params=_query(params), headers=headers
            ) as r:
                raw = await r.read()
                status, reason, resp_headers = r.status, r.reason or "", r.headers
        except TimeoutError:
            raise ApiUnreachable(self.address, f"no answer within {self.timeout:g}s") from None
        except aiohttp.ClientConnectorError as e:
            raise ApiUnreachable(self.address, _connect_reason(e)) from None
        except aiohttp.ClientError as e:
            raise ApiUnreachable(self.address, str(e) or type(e).__name__) from None
        payload: Any = None
        if raw:
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = raw.decode(errors="replace")
        if status >= 400:
            raise _error_from(status, reason, payload, resp_headers)
        return payload, resp_headers

    async def get(
        self, path: str, body: Any = None, params: Params | None = None
    ) -> tuple[Any, Mapping[str, str]]:
        return await self.request("GET", path, body, params)

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
