"""Getting a cluster's CA certificate before trusting anything (trust on first use).

``GET /v1/cluster/ca`` is public. It is fetched *without* verifying the
server (there is nothing to verify it with yet); what makes it safe is what
the caller does next: compare its fingerprint with one given out of band
(``heroctld agent --ca-fingerprint``, ``heroctl login --ca-fingerprint``) or
show it to a person who confirms it, then pin it and verify every later
connection with it.
"""

from __future__ import annotations

import aiohttp

from client.errors import ApiUnreachable, error_from
from client.transport import decode_body, failure_reason, parse_addresses
from domain.pki import fingerprint

__all__ = ["fetch_ca_unverified"]


async def fetch_ca_unverified(address: str, timeout: float = 15.0) -> tuple[str, str]:
    """(PEM, ``sha256:...`` fingerprint) of the CA the server at ``address``
    presents (several, `a,b,c`: the first that answers); ApiClientError when
    it cannot be had."""
    bases = parse_addresses(address)
    for base in bases[:-1]:
        try:
            return await _fetch(base, timeout)
        except ApiUnreachable:
            continue
    return await _fetch(bases[-1], timeout)


async def _fetch(base: str, timeout: float) -> tuple[str, str]:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(base + "/v1/cluster/ca", ssl=False) as r,
        ):
            raw = await r.read()
            if r.status >= 400:
                raise error_from(r.status, r.reason or "", decode_body(raw), r.headers)
    except TimeoutError:
        raise ApiUnreachable(base, f"no answer within {timeout:g}s") from None
    except aiohttp.ClientError as e:
        raise ApiUnreachable(base, failure_reason(e)) from None
    pem = raw.decode(errors="replace")
    try:
        return pem, fingerprint(pem)
    except ValueError:
        raise ApiUnreachable(base, "GET /v1/cluster/ca did not answer a certificate") from None
