"""How a worker-only node comes to trust the cluster's CA without being spoofable.

Either the operator gives the CA certificate as a file (``--ca-file``), or
its fingerprint (``--ca-fingerprint sha256:HEX``, what `heroctl login` and
``GET /v1/cluster/ca`` show): the node then fetches the CA from a server,
refuses it unless its fingerprint is the one given, and keeps it in its data
dir (``<data-dir>/ca.pem``; a restart uses it without asking again). Either
way every later request verifies the servers against that CA, so a server
impersonated on the network never sees the node's token.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from client import ApiClientError, fetch_ca_unverified
from domain.pki import fingerprint, normalize_fingerprint

__all__ = ["CaRefused", "pinned_ca_file"]

log = logging.getLogger("heroctl.agent")

CA_FILE = "ca.pem"


class CaRefused(Exception):
    """No server presented the CA with the fingerprint we were given."""


async def pinned_ca_file(
    servers: list[str], expected: str, data_dir: str, patience: float = 60.0
) -> str:
    """The path of the cluster CA whose fingerprint is ``expected``, fetched
    from the first server that answers when not already kept in ``data_dir``
    (asking again for ``patience`` seconds while none answers)."""
    want = normalize_fingerprint(expected)
    path = Path(data_dir) / CA_FILE
    try:
        if fingerprint(path.read_text()) == want:
            return str(path)
    except (OSError, ValueError):
        pass
    deadline = time.monotonic() + patience
    while True:
        problems = []
        for address in servers:
            try:
                pem, got = await fetch_ca_unverified(address)
            except ApiClientError as e:
                problems.append(str(e))
                continue
            if got != want:
                raise CaRefused(
                    f"{address} presents the CA {got}, not {want}: refusing it (not this "
                    "cluster, or someone in between)"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(CA_FILE + ".tmp")
            tmp.write_text(pem)
            os.replace(tmp, path)
            log.info("agent: trusting the cluster CA %s (kept in %s)", want, path)
            return str(path)
        if time.monotonic() >= deadline:
            raise CaRefused("no server answered GET /v1/cluster/ca: " + "; ".join(problems))
        log.warning("agent: no server gave the cluster CA yet (%s)", problems[-1])
        await asyncio.sleep(1.0)
