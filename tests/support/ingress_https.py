"""Clients of a node's ingress as a browser would be, without DNS: connect to
127.0.0.1 on the node's port, name the host in SNI and ``Host``, and verify
the certificate chain against the CA's root (never ``verify=False``).

Every node of a test cluster listens on its own ports on 127.0.0.1, so a
request says which node it asks by its port and which site by its host.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

TIMEOUT = 5.0


def verifying_context(roots_pem: str) -> ssl.SSLContext:
    """A client context that trusts only ``roots_pem`` and checks the host name."""
    context = ssl.create_default_context(cadata=roots_pem)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    return context


@dataclass(frozen=True)
class Answer:
    """One response, and the leaf certificate it came with (HTTPS only)."""

    status: int
    headers: dict[str, str]
    body: str
    leaf_sha256: str | None = None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


def _exchange(
    conn: http.client.HTTPConnection, host: str, path: str, headers: dict[str, str] | None
) -> tuple[int, dict[str, str], str]:
    conn.request("GET", path, headers={"Host": host, **(headers or {})})
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read().decode(errors="replace")


def https_get(
    context: ssl.SSLContext,
    port: int,
    host: str,
    path: str = "/",
    headers: dict[str, str] | None = None,
) -> Answer:
    """GET ``https://<host>:<port><path>`` from 127.0.0.1; raises
    ``ssl.SSLCertVerificationError`` when the node serves no certificate of
    ``host`` that chains to the context's roots."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        tls = context.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    conn.sock = tls  # already connected and verified: http.client speaks HTTP over it
    try:
        leaf = tls.getpeercert(binary_form=True)
        status, answer_headers, body = _exchange(conn, host, path, headers)
    finally:
        conn.close()
    fingerprint = hashlib.sha256(leaf).hexdigest() if leaf else None
    return Answer(status, answer_headers, body, fingerprint)


def http_get(port: int, host: str, path: str = "/") -> Answer:
    """GET ``http://<host>:<port><path>`` from 127.0.0.1 (redirects not followed)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        return Answer(*_exchange(conn, host, path, None))
    finally:
        conn.close()


class LoopbackResolver(AbstractResolver):
    """aiohttp's resolver for a machine where every name is 127.0.0.1: a URL
    keeps its real host (``Host``, SNI, the certificate check), the connection
    goes to loopback."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        result: Any = {
            "hostname": host,
            "host": "127.0.0.1",
            "port": port,
            "family": socket.AF_INET,
            "proto": 0,
            "flags": 0,
        }
        return [result]

    async def close(self) -> None:
        """Nothing to release."""
