"""What the validator must find: the tls-alpn-01 certificate (RFC 8737) and the http-01 path."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from heroctld.controllers.acme.challenges import (
    ACME_IDENTIFIER_OID,
    http01_path,
    key_authorization,
    tls_alpn01_certificate,
)

KEY_AUTH = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


def test_tls_alpn01_certificate_carries_the_critical_digest_of_the_key_authorization() -> None:
    cert_pem, key_pem = tls_alpn01_certificate("app.example.test", KEY_AUTH)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    extension = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    assert extension.critical
    assert isinstance(extension.value, x509.UnrecognizedExtension)
    # extnValue = DER OCTET STRING (tag 0x04, length 32) of SHA-256(key authorization)
    digest = hashlib.sha256(KEY_AUTH.encode()).digest()
    assert extension.value.value == b"\x04\x20" + digest
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["app.example.test"]
    assert len(list(san)) == 1  # the host is the only name
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == cert.public_key()


def test_each_challenge_certificate_has_its_own_key() -> None:
    first = tls_alpn01_certificate("app.example.test", KEY_AUTH)
    second = tls_alpn01_certificate("app.example.test", KEY_AUTH)
    assert first[1] != second[1]


def test_http01_path_and_key_authorization() -> None:
    assert http01_path("tok-EN_1") == "/.well-known/acme-challenge/tok-EN_1"
    # RFC 8555 §8.1: token "." base64url(thumbprint) without padding
    assert key_authorization("tok", b"\xfb\xff") == "tok.-_8"
