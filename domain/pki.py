"""The cluster's own certificate authority: pure certificate work.

At bootstrap the leader makes a CA (:func:`new_ca`); its certificate is
public, its private key enters the Raft log only sealed (AES-256-GCM under
``derive_key(cluster_key, "tls-ca")``, :class:`CaKeys`), like a secret. Every
server holds the cluster key, so each opens the CA key itself and signs its
own certificate (:func:`issue_server_cert`) for its advertise address and
names: no certificate or key travels between servers.

``CaKeys.mac`` lets a server that joins with only the cluster key check that
the CA a server shows it (``GET /v1/cluster/ca``, unverified) is this
cluster's: the answer carries an HMAC of the PEM under another key derived
from the cluster key, which a spoofing server cannot make.

Keys are ECDSA P-256: a key pair costs well under a millisecond to make, a
handshake less CPU than RSA-2048 on the server side.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from raft.keys import derive_key

__all__ = [
    "CA_LIFETIME",
    "CA_MAC_HEADER",
    "CertInfo",
    "CaKeys",
    "CaOpenError",
    "IssuedCert",
    "cert_info",
    "fingerprint",
    "key_id",
    "issue_server_cert",
    "new_ca",
    "new_csr",
    "new_key",
    "sign_csr",
    "normalize_fingerprint",
    "usable_names",
]

CA_LIFETIME = datetime.timedelta(days=3650)
BACKDATE = datetime.timedelta(minutes=5)  # tolerate clocks a little behind the signer's
# A name every server certificate carries besides its own: the ingress proxies
# `manage.<domain>` to any server and verifies it by this name (as Nomad's
# `server.<region>.nomad`).
API_SERVER_NAME = "api.heroctl.internal"
CA_MAC_HEADER = "X-HeroCtl-CA-MAC"  # GET /v1/cluster/ca: CaKeys.mac of the PEM served
_NONCE = 12
_AAD = b"heroctl-tls-ca-key"


class CaOpenError(Exception):
    """The sealed CA key does not open: another cluster key, or tampered data."""


@dataclass(frozen=True)
class IssuedCert:
    """A PEM certificate and its PEM private key (PKCS#8, unencrypted: write it 0600)."""

    cert_pem: str
    key_pem: str


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def new_ca(cluster_id: str) -> IssuedCert:
    """A self-signed CA for one cluster, named after it, valid CA_LIFETIME."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HeroCtl"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"HeroCtl cluster CA {cluster_id}"),
        ]
    )
    now = _now()
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return IssuedCert(_cert_pem(cert), _key_pem(key))


def usable_names(names: Iterable[str]) -> list[str]:
    """The names a certificate can carry, normalized as it will (IP addresses,
    lower-case DNS names; a host name that is no DNS name is left out)."""
    out: list[str] = []
    for raw in names:
        name = raw.strip().strip("[]").lower()
        try:
            name = str(ipaddress.ip_address(name))
        except ValueError:
            if not (name and name.isascii() and all(c.isalnum() or c in "-._" for c in name)):
                continue
        if name not in out:
            out.append(name)
    return out


def _alt_names(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in usable_names(names):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def issue_server_cert(
    ca: IssuedCert, common_name: str, names: Iterable[str], lifetime: datetime.timedelta
) -> IssuedCert:
    """A server certificate signed by ``ca`` for ``names`` (host names and IP
    addresses, each a subject alternative name), valid ``lifetime`` from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert_pem = _sign_leaf(ca, key.public_key(), common_name, names, lifetime)
    return IssuedCert(cert_pem, _key_pem(key))


def _sign_leaf(
    ca: IssuedCert,
    public: ec.EllipticCurvePublicKey,
    common_name: str,
    names: Iterable[str],
    lifetime: datetime.timedelta,
) -> str:
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca.key_pem.encode(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key")
    alt = _alt_names(names)
    if not alt:
        raise ValueError("a server certificate needs at least one name or address")
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - min(BACKDATE, lifetime / 10))
        .not_valid_after(now + lifetime)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _cert_pem(cert)


def new_key() -> str:
    """A new private key (ECDSA P-256, PEM): a node's own, for its agent API."""
    return _key_pem(ec.generate_private_key(ec.SECP256R1()))


def new_csr(key_pem: str, common_name: str) -> str:
    """A certificate signing request for ``key_pem`` (PEM): what a worker-only
    node sends when it registers, so its private key never leaves it."""
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the key is not an EC key")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def sign_csr(
    ca: IssuedCert,
    csr_pem: str,
    common_name: str,
    names: Iterable[str],
    lifetime: datetime.timedelta,
) -> str:
    """A server certificate (PEM) for the public key of ``csr_pem``, for
    ``names`` chosen by the signer: whatever names the request asks for are
    ignored, so a node gets a certificate for the address it registered and
    nothing else. ValueError for a request that is not one, or not signed by
    its key."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError:
        raise ValueError("not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise ValueError("the signing request's signature does not verify")
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise ValueError("the signing request's key is not an EC key")
    return _sign_leaf(ca, public, common_name, names, lifetime)


@dataclass(frozen=True)
class CertInfo:
    """What a server needs to know of a certificate to decide on renewing it."""

    serial: int
    not_before: float  # unix seconds
    not_after: float
    issuer_key_id: bytes  # the authority key id (b"" when absent)
    names: frozenset[str]

    def renew_at(self, renew_fraction: float = 1 / 3) -> float:
        """When to renew: once less than ``renew_fraction`` of its lifetime is left."""
        return self.not_after - (self.not_after - self.not_before) * renew_fraction


def cert_info(cert_pem: str) -> CertInfo:
    """Serial, validity, issuer key id and names of a PEM certificate (ValueError if not one)."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        issuer_key = aki.key_identifier or b""
    except x509.ExtensionNotFound:
        issuer_key = b""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = {str(n) for n in san.get_values_for_type(x509.DNSName)}
        names |= {str(n) for n in san.get_values_for_type(x509.IPAddress)}
    except x509.ExtensionNotFound:
        names = set()
    return CertInfo(
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        issuer_key_id=issuer_key,
        names=frozenset(names),
    )


def key_id(cert_pem: str) -> bytes:
    """The subject key identifier of a (CA) certificate: what its leaves name as issuer."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def fingerprint(cert_pem: str) -> str:
    """``sha256:<hex>`` of the certificate's DER: what people compare and pin."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return "sha256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def normalize_fingerprint(text: str) -> str:
    """``sha256:AB:CD...``, ``AB CD ...`` or ``abcd...`` -> ``sha256:abcd...``
    (ValueError unless it is 32 bytes of hex)."""
    raw = text.strip().lower()
    raw = raw.removeprefix("sha256:").removeprefix("sha256 ")
    digits = "".join(c for c in raw if c not in ": ")
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"{text!r} is not a SHA-256 fingerprint (sha256:<64 hex digits>)")
    return "sha256:" + digits


class CaKeys:
    """The keys derived from the cluster key for the CA: sealing its private
    key for the Raft log, and the MAC that proves a served CA is this cluster's."""

    def __init__(self, cluster_key: str) -> None:
        self._aead = AESGCM(derive_key(cluster_key, "tls-ca"))
        self._mac_key = derive_key(cluster_key, "tls-ca-pin")

    def seal(self, key_pem: str) -> dict[str, bytes]:
        nonce = os.urandom(_NONCE)
        return {"nonce": nonce, "ciphertext": self._aead.encrypt(nonce, key_pem.encode(), _AAD)}

    def open(self, sealed: dict[str, bytes]) -> str:
        try:
            return self._aead.decrypt(sealed["nonce"], sealed["ciphertext"], _AAD).decode()
        except (InvalidTag, ValueError, KeyError, TypeError):
            raise CaOpenError(
                "the cluster CA's key does not decrypt: this server's cluster key is not "
                "the one the CA was made with"
            ) from None

    def mac(self, ca_pem: str) -> str:
        return hmac.new(self._mac_key, ca_pem.encode(), hashlib.sha256).hexdigest()

    def mac_ok(self, ca_pem: str, mac: str | None) -> bool:
        return bool(mac) and hmac.compare_digest(self.mac(ca_pem), str(mac))
