"""The cluster CA as the API uses it: the keys derived for it (cached per
cluster key), and signing a worker-only node's certificate at registration.

A worker-only node serves its agent API (which the servers call for its logs
and metrics) over TLS with a certificate the cluster signs: it registers with
a signing request (``agent_csr``) and an ``https://`` ``agent_api``, and the
server that takes the registration opens the CA key (it holds the cluster
key) and signs the request's public key for the host of ``agent_api`` only,
whatever names the request asks for. The node's private key never leaves it.

That host may not be one a server's certificate stands for (a server's name,
the host of its API or raft address, localhost, 127.0.0.1, ::1): servers
trust each other by host name under the same CA, so a node holding a
certificate for a server's address could pose as that server.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from api.context import replica_of
from api.security.runtime import security_of
from domain.pki import CaKeys, CaOpenError, IssuedCert, sign_csr
from httpkit.errors import ApiError
from raft.replica import StateView

NODE_CERT_LIFETIME = datetime.timedelta(days=90)  # the node renews at a third left
MAX_CSR = 8 * 1024


@functools.lru_cache(maxsize=4)
def _ca_keys(cluster_key: str) -> CaKeys:
    return CaKeys(cluster_key)  # HKDF once per key, not per request


def ca_keys(request: web.Request) -> CaKeys:
    return _ca_keys(security_of(request).settings.cluster_key)


def server_hosts(view: StateView) -> set[str]:
    """Every name a server's certificate may stand for, lower case."""
    hosts = {"localhost", "127.0.0.1", "::1"}
    for row in view.servers.values():
        hosts.add(str(row.get("name", "")).lower())
        for address in (row.get("api_address"), row.get("raft_address")):
            if isinstance(address, str) and address:
                target = address if "://" in address else f"//{address}"
                hostname = urlsplit(target).hostname
                if hostname:
                    hosts.add(hostname.lower())
    return hosts


def sign_agent_csr(request: web.Request, body: dict[str, Any]) -> str | None:
    """The certificate for a registering node's agent API, or None when it
    asked for none, or the cluster has no CA of its own (``[tls] mode`` files
    or off: the node then serves no agent API over TLS)."""
    csr, url = body.get("agent_csr"), body.get("agent_api")
    if csr is None:
        return None
    if not isinstance(csr, str) or len(csr) > MAX_CSR:
        raise ApiError(400, "invalid_field", "field 'agent_csr' must be a PEM signing request")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme != "https" or not parts.hostname:
        raise ApiError(400, "invalid_field", "field 'agent_csr' goes with an https 'agent_api'")
    host = parts.hostname.lower()
    with replica_of(request).read() as view:
        row = view.pki.ca()
        taken = host in server_hosts(view)
    if taken:
        raise ApiError(
            403,
            "forbidden",
            f"agent_api host '{host}' is a server's name or address: a node's certificate "
            "cannot stand for a server",
        )
    if row is None:
        return None
    try:
        ca = IssuedCert(str(row["cert"]), ca_keys(request).open(row["key"]))
        return sign_csr(ca, csr, str(body["id"]), [parts.hostname], NODE_CERT_LIFETIME)
    except CaOpenError as e:
        raise ApiError(500, "ca_unavailable", str(e)) from None
    except ValueError as e:
        raise ApiError(400, "invalid_field", f"field 'agent_csr': {e}") from None
