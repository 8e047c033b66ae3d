"""TLS for a worker-only node's agent API, with a certificate the cluster signs.

The node makes its own key (``<data-dir>/agent/api-key.pem``, 0600, kept
across restarts) and registers with a signing request for it
(``agent_csr``) and an ``https://`` agent API address; the server that takes
the registration signs the request for that address (api.tls_ca) and answers
the certificate, which the node keeps (``api-cert.pem``) and serves. The
servers reach the agent API with the cluster CA (api.relay), so they verify
the node as the node verifies them. It registers again for a new certificate
when a third of the old one's lifetime is left, and loads it into the same
``ssl.SSLContext``: open streams keep going, new connections get the new one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from pathlib import Path
from typing import Any

from agent.agent import Agent
from client import ApiClientError
from domain.pki import cert_info, new_csr, new_key

__all__ = ["AgentApiTls"]

log = logging.getLogger("heroctl.agent")

RETRY = 60.0  # seconds between attempts at a renewal that failed


class AgentApiTls:
    """The key, certificate and listening TLS context of this node's agent API."""

    def __init__(self, data_dir: str, node_name: str) -> None:
        self.dir = Path(data_dir) / "agent"
        self.key_path = self.dir / "api-key.pem"
        self.cert_path = self.dir / "api-cert.pem"
        self.node_name = node_name
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.renew_at = 0.0

    def csr(self) -> str:
        """A signing request for this node's key (made on first use, 0600)."""
        try:
            key = self.key_path.read_text()
        except FileNotFoundError:
            key = new_key()
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(key)
        return new_csr(key, self.node_name)

    def load(self, node: dict[str, Any]) -> bool:
        """Serve the certificate a registration answered (False: none came)."""
        cert = node.get("agent_cert")
        if not isinstance(cert, str):
            return False
        tmp = self.cert_path.with_name(self.cert_path.name + ".tmp")
        tmp.write_text(cert)
        os.replace(tmp, self.cert_path)
        self.ctx.load_cert_chain(self.cert_path, self.key_path)
        info = cert_info(cert)
        self.renew_at = info.renew_at()
        log.info("agent API: serving a certificate signed by the cluster (serial %x)", info.serial)
        return True

    async def keep_current(self, agent: Agent) -> None:
        """Register again for a new certificate before this one expires."""
        assert agent.identity is not None
        while True:
            await asyncio.sleep(max(1.0, self.renew_at - time.time()))
            try:
                node = await agent.client.post("/v1/nodes/register", agent.identity.register_body())
                if not self.load(node if isinstance(node, dict) else {}):
                    raise ValueError("the registration answered no certificate")
            except (ApiClientError, ValueError, OSError, ssl.SSLError) as e:
                log.warning("agent API: renewing its certificate failed (%s); retrying", e)
                self.renew_at = time.time() + RETRY
