"""Certificates an ingress serves: what they say, whether a pair is usable, host names.

Pure functions over PEM text (parsing is the only work they do), shared by
the API (an uploaded ``tls.cert``/``tls.key`` is checked before it is sealed
into the log; ``GET /v1/ingress/:host`` describes what is served) and the
ACME controller (when to renew, what it obtained).

Host matching follows RFC 6125 as browsers apply it: only DNS names of the
subjectAltName count (the subject's CN is ignored, as every current client
does), case-insensitively, and a wildcard is a whole leftmost label ``*``
standing for exactly one label: ``*.example.com`` covers ``a.example.com``,
neither ``example.com`` nor ``a.b.example.com``.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import re
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

__all__ = [
    "MAX_HOST_LENGTH",
    "CertificateError",
    "check_pair",
    "covers",
    "describe",
    "is_wildcard",
    "normalize_host",
    "renew_after",
    "valid_host",
]

MAX_HOST_LENGTH = 253
RENEW_FRACTION = 2 / 3  # renew once two thirds of the lifetime have passed (as certbot does)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # used with fullmatch
_WILDCARD_PREFIX = "*."


class CertificateError(ValueError):
    """A certificate or key the caller gave is unusable; ``field`` names which one.

    ``field`` is the request field to blame (``tls.cert`` or ``tls.key``), so
    the API can answer the contract's 400 naming it. The message never quotes
    the key.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _utc(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _load_chain(cert_pem: str) -> list[x509.Certificate]:
    """The certificates of a PEM bundle, leaf first; CertificateError('tls.cert') if none parse."""
    if "PRIVATE KEY-----" in cert_pem:
        raise CertificateError("tls.cert", "holds a private key: give it as tls.key")
    if "-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise CertificateError(
            "tls.cert", "not a PEM certificate (no -----BEGIN CERTIFICATE----- block)"
        )
    try:
        return x509.load_pem_x509_certificates(cert_pem.encode())
    except (ValueError, TypeError, UnicodeEncodeError):
        raise CertificateError("tls.cert", "a PEM certificate block does not parse") from None


def _readable_name(name: x509.Name) -> str:
    """A name people recognise: its CN, else its O, else the whole RFC 4514 string."""
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        attributes = name.get_attributes_for_oid(oid)
        if attributes:
            value = attributes[0].value
            return value if isinstance(value, str) else value.decode(errors="replace")
    return name.rfc4514_string()


def _san_hosts(cert: x509.Certificate) -> list[str]:
    """The subjectAltName's DNS names (lowercase) and IP addresses, in certificate order."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    hosts: list[str] = []
    for entry in san:
        if isinstance(entry, x509.DNSName):
            hosts.append(entry.value.lower())
        elif isinstance(entry, x509.IPAddress):
            hosts.append(str(entry.value))
    return hosts


def describe(cert_pem: str) -> dict[str, Any]:
    """The leaf's facts for an API answer: issuer, subject, hosts, validity, serial, fingerprint.

    ``not_before``/``not_after`` are unix seconds, ``serial`` and ``sha256``
    (of the leaf's DER) lowercase hex. Raises CertificateError('tls.cert').
    """
    leaf = _load_chain(cert_pem)[0]
    return {
        "issuer": _readable_name(leaf.issuer),
        "subject": _readable_name(leaf.subject),
        "hosts": _san_hosts(leaf),
        "not_before": int(leaf.not_valid_before_utc.timestamp()),
        "not_after": int(leaf.not_valid_after_utc.timestamp()),
        "serial": format(leaf.serial_number, "x"),
        "sha256": hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
    }


def _public_der(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_key(key_pem: str) -> Any:
    try:
        return serialization.load_pem_private_key(key_pem.encode(), password=None)
    except TypeError:
        raise CertificateError(
            "tls.key", "the private key is encrypted: give it without a passphrase"
        ) from None
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm):
        # cryptography's message is generic; never echo any of the input.
        raise CertificateError("tls.key", "not a PEM private key") from None


def covers(pattern: str, host: str) -> bool:
    """Whether a certificate name (``pattern``, maybe ``*.`` wildcard) covers ``host`` (RFC 6125).

    A wildcard host (``*.example.com``, an ingress for every subdomain) is
    covered only by the same wildcard. An IP address matches only itself.
    """
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if pattern == host:
        return True
    if not pattern.startswith(_WILDCARD_PREFIX) or host.startswith(_WILDCARD_PREFIX):
        return False
    suffix = pattern[len(_WILDCARD_PREFIX) :]
    if "*" in suffix or suffix.count(".") < 1:  # no nested wildcards, no "*.com"
        return False
    label, dot, rest = host.partition(".")
    return bool(dot) and bool(label) and rest == suffix and not _is_ip(host)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_pair(cert_pem: str, key_pem: str, host: str, now: float) -> None:
    """Raise CertificateError unless this certificate and key can serve ``host`` at ``now``.

    In order: the certificate parses (``tls.cert``), the key parses
    (``tls.key``), the key is the certificate's (``tls.key``), the leaf is
    valid at ``now`` (``tls.cert``: expired or not yet valid, saying when),
    and its subjectAltName covers ``host`` (``tls.cert``).
    """
    leaf = _load_chain(cert_pem)[0]
    key = _load_key(key_pem)
    if _public_der(key.public_key()) != _public_der(leaf.public_key()):
        raise CertificateError("tls.key", "the private key does not match the certificate")
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    if moment > leaf.not_valid_after_utc:
        raise CertificateError(
            "tls.cert", f"the certificate expired at {_utc(leaf.not_valid_after_utc)}"
        )
    if moment < leaf.not_valid_before_utc:
        raise CertificateError(
            "tls.cert", f"the certificate is not valid before {_utc(leaf.not_valid_before_utc)}"
        )
    hosts = _san_hosts(leaf)
    if not any(covers(name, host) for name in hosts):
        names = ", ".join(hosts) if hosts else "no names in its subjectAltName"
        raise CertificateError(
            "tls.cert", f"the certificate does not cover {host!r} (it is for {names})"
        )


def renew_after(not_before: float, not_after: float) -> float:
    """When to renew: once two thirds of the lifetime have passed (30 days left of 90)."""
    return not_before + (not_after - not_before) * RENEW_FRACTION


def normalize_host(name: str) -> str:
    """The form hosts are stored and compared in: lowercase (no other change)."""
    return name.lower()


def is_wildcard(name: str) -> bool:
    """Whether a host name is a wildcard (``*.example.com``): check it with :func:`valid_host`."""
    return name.startswith(_WILDCARD_PREFIX)


def valid_host(name: str, *, allow_wildcard: bool = True) -> bool:
    """Whether ``name`` is a usable host name (RFC 1123), compared lowercase.

    ASCII letters, digits and inner hyphens; labels of 1 to 63 characters; at
    most 253 characters; no trailing dot; the last label not all digits (so no
    IPv4 literal passes as a name); an internationalized name in its ``xn--``
    form. A leading ``*.`` (one whole label, over at least two more labels:
    ``*.example.com``, not ``*.com``) is accepted when ``allow_wildcard``;
    :func:`is_wildcard` says which it is.
    """
    if not isinstance(name, str) or not name.isascii():
        return False
    name = normalize_host(name)
    if len(name) > MAX_HOST_LENGTH:
        return False
    labels = name.split(".")
    if labels[0] == "*":
        if not allow_wildcard or len(labels) < 3:
            return False
        labels = labels[1:]
    if not all(_LABEL.fullmatch(label) for label in labels):
        return False
    return not labels[-1].isdigit()
