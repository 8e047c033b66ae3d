"""Whether a node's ingress shows a tls-alpn-01 certificate: the check the
leader makes before it tells the CA to look (RFC 8737, as its validator does).

A TLS handshake to the node's HTTPS port, naming the host (SNI) and offering
only the ALPN protocol ``acme-tls/1``: the node answers it when it agrees on
that protocol and shows exactly the certificate the leader published. Nothing
is verified (the certificate is self-signed on purpose); it is compared.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import Protocol, TypeVar

from heroctld.controllers.acme.challenges import ACME_TLS_ALPN_PROTOCOL

__all__ = ["HttpsEndpoint", "shows_certificate", "wait_until_shown"]

POLL_INTERVAL = 0.1  # between two checks of one node
HANDSHAKE_TIMEOUT = 2.0  # one check of one node


class HttpsEndpoint(Protocol):
    """Where a node's ingress listens for HTTPS (``IngressEndpoint``)."""

    @property
    def address(self) -> str: ...

    @property
    def https_port(self) -> int: ...


E = TypeVar("E", bound=HttpsEndpoint)


def _acme_tls_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # compared below, byte for byte, instead
    context.set_alpn_protocols([ACME_TLS_ALPN_PROTOCOL])
    return context


async def shows_certificate(endpoint: HttpsEndpoint, host: str, cert_der: bytes) -> bool:
    """Whether ``endpoint``'s HTTPS port shows ``cert_der`` to ``acme-tls/1`` for ``host``."""
    writer = None
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            _, writer = await asyncio.open_connection(
                endpoint.address,
                endpoint.https_port,
                ssl=_acme_tls_context(),
                server_hostname=host,
            )
        tls = writer.get_extra_info("ssl_object")
        agreed = tls is not None and tls.selected_alpn_protocol() == ACME_TLS_ALPN_PROTOCOL
        return agreed and tls.getpeercert(binary_form=True) == cert_der
    except (OSError, ssl.SSLError, TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                    await writer.wait_closed()


async def wait_until_shown(endpoints: list[E], host: str, cert_pem: str, timeout: float) -> list[E]:
    """Check every endpoint until it shows the certificate or ``timeout``
    passes; returns those that never did (empty: all confirmed)."""
    cert_der = ssl.PEM_cert_to_DER_cert(cert_pem)
    deadline = time.monotonic() + timeout

    async def until_shown(endpoint: E) -> bool:
        while not await shows_certificate(endpoint, host, cert_der):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(POLL_INTERVAL, remaining))
        return True

    shown = await asyncio.gather(*(until_shown(e) for e in endpoints))
    return [e for e, ok in zip(endpoints, shown, strict=True) if not ok]
