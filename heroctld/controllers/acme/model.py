"""The ACME client's vocabulary: its settings, its one error, what it hands back, who it asks.

Kept apart from the client so the leader's controller and the ingress side
(which publishes challenges) can name these types without pulling in the
``acme`` library's network machinery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from domain.certificates import describe, renew_after

__all__ = [
    "AcmeError",
    "AcmeSettings",
    "ChallengePublisher",
    "IssuedCertificate",
    "TlsAlpnPublisher",
]


@dataclass(frozen=True)
class AcmeSettings:
    """Where the CA is and how patiently to talk to it.

    ``ca_bundle`` is the CA file the directory's HTTPS is verified against
    (requests' ``verify=``; None: the system's trust store). Verification is
    never turned off. ``poll_interval`` paces polling of authorizations and
    orders (acme's own helpers sleep a fixed second); ``timeout`` bounds one
    whole issuance; ``request_timeout`` one HTTP request.
    """

    directory: str
    email: str | None = None
    ca_bundle: str | None = None
    poll_interval: float = 0.2
    timeout: float = 90.0
    request_timeout: float = 15.0


class AcmeError(Exception):
    """An issuance or registration failed; the message carries the CA's problem, never a key.

    ``problem_type`` is the ACME problem's URN when the CA sent one
    (``urn:ietf:params:acme:error:connection``...), so a caller can tell a
    failed validation from a rate limit without parsing the text.
    """

    def __init__(self, message: str, problem_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problem_type = problem_type


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate the CA issued: the full chain (leaf first), its key, and the leaf's facts."""

    cert_pem: str
    key_pem: str = field(repr=False)
    issuer: str
    subject: str
    hosts: tuple[str, ...]
    not_before: int
    not_after: int
    serial: str
    sha256: str

    @classmethod
    def from_pem(cls, cert_pem: str, key_pem: str) -> IssuedCertificate:
        facts = describe(cert_pem)
        facts["hosts"] = tuple(facts["hosts"])
        return cls(cert_pem=cert_pem, key_pem=key_pem, **facts)

    @property
    def renew_after(self) -> float:
        """Unix time from which to renew (two thirds of the lifetime)."""
        return renew_after(self.not_before, self.not_after)


@runtime_checkable
class ChallengePublisher(Protocol):
    """Whoever answers the CA's validator: in HeroCtl, the ingress proxies on ports 80/443.

    ``publish_*`` returns once every proxy the validator may reach serves the
    answer; ``retract_*`` once it no longer needs to. A publisher may set
    ``challenge_types`` (preference order, e.g. ``("tls-alpn-01",)`` when port
    80 is closed); without it, http-01 is used, tls-alpn-01 only as a fallback
    the CA offers when the publisher implements :class:`TlsAlpnPublisher`.
    """

    async def publish_http01(self, host: str, token: str, key_authorization: str) -> None: ...

    async def retract_http01(self, host: str, token: str) -> None: ...


@runtime_checkable
class TlsAlpnPublisher(Protocol):
    """The optional tls-alpn-01 half of a publisher: serve this certificate to ``acme-tls/1``."""

    async def publish_tls_alpn01(self, host: str, cert_pem: str, key_pem: str) -> None: ...

    async def retract_tls_alpn01(self, host: str) -> None: ...


def publisher_challenge_types(publisher: object) -> Sequence[str]:
    """The challenge types a publisher answers, most preferred first."""
    declared = getattr(publisher, "challenge_types", None)
    if declared is not None:
        return tuple(declared)
    types = ["http-01"]
    if isinstance(publisher, TlsAlpnPublisher):
        types.append("tls-alpn-01")
    return tuple(types)
