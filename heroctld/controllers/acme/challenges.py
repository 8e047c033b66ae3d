"""What an ACME challenge asks us to serve, built without the network.

* http-01 (RFC 8555 §8.3): the key authorization as plain text at
  ``http://<host>/.well-known/acme-challenge/<token>`` on port 80.
* tls-alpn-01 (RFC 8737): a self-signed certificate for the host, served on
  port 443 to a client offering only the ALPN protocol ``acme-tls/1``, with a
  critical acmeIdentifier extension (1.3.6.1.5.5.7.1.31) holding the SHA-256
  of the key authorization. The ``acme`` package (5.x) no longer builds it.

The key authorization (RFC 8555 §8.1) is ``token + "." + base64url(SHA-256
JWK thumbprint of the account key)``: it proves the account's key, not the
certificate's, so it is no secret; the challenge certificate's key is
throwaway.
"""

from __future__ import annotations

import base64
import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "ACME_IDENTIFIER_OID",
    "ACME_TLS_ALPN_PROTOCOL",
    "HTTP01",
    "HTTP01_PREFIX",
    "TLS_ALPN01",
    "http01_path",
    "key_authorization",
    "tls_alpn01_certificate",
]

HTTP01 = "http-01"
TLS_ALPN01 = "tls-alpn-01"
HTTP01_PREFIX = "/.well-known/acme-challenge/"
ACME_TLS_ALPN_PROTOCOL = "acme-tls/1"
ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")
_CHALLENGE_CERT_LIFETIME = datetime.timedelta(days=7)


def http01_path(token: str) -> str:
    """The URL path the validator GETs for an http-01 challenge."""
    return HTTP01_PREFIX + token


def key_authorization(token: str, account_thumbprint: bytes) -> str:
    """RFC 8555 §8.1: the token, a dot, and the account key's SHA-256 JWK thumbprint (base64url)."""
    encoded = base64.urlsafe_b64encode(account_thumbprint).rstrip(b"=").decode()
    return f"{token}.{encoded}"


def _der_octet_string(content: bytes) -> bytes:
    """DER OCTET STRING of a short value (the acmeIdentifier's extnValue content)."""
    if len(content) >= 128:  # pragma: no cover - a SHA-256 digest is 32 bytes
        raise ValueError("only short octet strings are encoded here")
    return bytes([0x04, len(content)]) + content


def tls_alpn01_certificate(host: str, key_authorization: str) -> tuple[str, str]:
    """The self-signed tls-alpn-01 certificate for ``host`` and its key: ``(cert_pem, key_pem)``.

    SAN = ``host`` (the only name), critical acmeIdentifier = DER OCTET STRING
    of SHA-256(key authorization), per RFC 8737 §3.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACME tls-alpn-01 challenge")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _CHALLENGE_CERT_LIFETIME)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, _der_octet_string(digest)),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem
