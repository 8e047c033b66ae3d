"""Automatic TLS for ingress hosts: an ACME client the leader uses to obtain and renew certificates.

``client`` talks to the CA, ``challenges`` builds what the validator must
find, ``model`` holds the shared types. The leader's controller (elsewhere)
decides when to issue and seals the account and certificate keys in the log.
"""

from .challenges import http01_path, key_authorization, tls_alpn01_certificate
from .client import AcmeClient, new_private_key_pem
from .model import (
    AcmeError,
    AcmeSettings,
    ChallengePublisher,
    IssuedCertificate,
    TlsAlpnPublisher,
)

__all__ = [
    "AcmeClient",
    "AcmeError",
    "AcmeSettings",
    "ChallengePublisher",
    "IssuedCertificate",
    "TlsAlpnPublisher",
    "http01_path",
    "key_authorization",
    "new_private_key_pem",
    "tls_alpn01_certificate",
]
