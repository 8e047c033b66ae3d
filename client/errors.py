"""The one exception family of the client library: every failure to get an
answer from the API, and every error answer, is an `ApiClientError`, so
callers (the CLI, the agent) catch one type and show one kind of message.

The API's error envelope (`{"error", "message", "request_id"}`) is decoded
here, in one place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["ApiClientError", "ApiUnreachable", "error_from"]


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


class CertificateUntrusted(ApiUnreachable):
    """The server's TLS certificate does not verify against the CA we trust:
    no CA given for a cluster with its own, another cluster, or a spoof."""


def error_from(
    status: int, reason: str, payload: Any, headers: Mapping[str, str]
) -> ApiClientError:
    """The error an answer with ``status`` >= 400 stands for."""
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
