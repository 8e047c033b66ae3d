"""domain.certificates: describing a certificate, checking a pair for a host, host names."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import string

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from domain.certificates import (
    CertificateError,
    check_pair,
    covers,
    describe,
    is_wildcard,
    normalize_host,
    renew_after,
    valid_host,
)

NOW = datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def make_cert(
    names: list[str],
    *,
    key: ec.EllipticCurvePrivateKey | None = None,
    not_before: datetime.datetime = NOW - DAY,
    not_after: datetime.datetime = NOW + 90 * DAY,
    issuer_cn: str = "Test Issuing CA",
) -> tuple[str, str]:
    """A leaf for ``names`` signed by a throwaway issuer: (cert PEM, key PEM)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "x")])
        )
        .issuer_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Org"),
                    x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn),
                ]
            )
        )
        .public_key(key.public_key())
        .serial_number(0xABCDEF0123)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem(key)


# -- describe ----------------------------------------------------------------------------------


def test_describe_reads_the_leaf_of_a_chain() -> None:
    cert_pem, _ = make_cert(["app.example.com", "www.example.com", "10.0.0.1"])
    other, _ = make_cert(["intermediate.example"])
    facts = describe(cert_pem + other)
    leaf = x509.load_pem_x509_certificate(cert_pem.encode())
    assert facts == {
        "issuer": "Test Issuing CA",
        "subject": "app.example.com",
        "hosts": ["app.example.com", "www.example.com", "10.0.0.1"],
        "not_before": int((NOW - DAY).timestamp()),
        "not_after": int((NOW + 90 * DAY).timestamp()),
        "serial": "abcdef0123",
        "sha256": hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
    }


def test_describe_names_the_organization_when_there_is_no_common_name() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Only Org")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + DAY)
        .sign(key, hashes.SHA256())
    )
    facts = describe(cert.public_bytes(serialization.Encoding.PEM).decode())
    assert facts["issuer"] == facts["subject"] == "Only Org"
    assert facts["hosts"] == []


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "hello",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nMIIB\n",  # cut short
    ],
)
def test_describe_refuses_garbage_as_tls_cert(garbage: str) -> None:
    with pytest.raises(CertificateError) as raised:
        describe(garbage)
    assert raised.value.field == "tls.cert"


# -- check_pair ---------------------------------------------------------------------------------


def check(
    cert_pem: str, key: str, host: str = "app.example.com", at: datetime.datetime = NOW
) -> None:
    check_pair(cert_pem, key, host, at.timestamp())


def test_a_good_pair_passes() -> None:
    cert_pem, key = make_cert(["app.example.com"])
    check(cert_pem, key)
    check(cert_pem, key, host="APP.example.com")  # host names compare case-insensitively


def test_garbage_certificate_blames_tls_cert() -> None:
    _, key = make_cert(["app.example.com"])
    with pytest.raises(CertificateError) as raised:
        check("not a certificate", key)
    assert raised.value.field == "tls.cert"
    assert "PEM" in raised.value.message


def test_a_key_given_as_the_certificate_is_named_without_being_echoed() -> None:
    _, key = make_cert(["app.example.com"])
    with pytest.raises(CertificateError) as raised:
        check(key, key)
    assert raised.value.field == "tls.cert"
    assert "private key" in raised.value.message
    assert key.splitlines()[1] not in str(raised.value)


@pytest.mark.parametrize(
    "bad_key",
    [
        "",
        "garbage",
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==\n-----END PRIVATE KEY-----\n",
    ],
)
def test_garbage_key_blames_tls_key_and_is_not_echoed(bad_key: str) -> None:
    cert_pem, _ = make_cert(["app.example.com"])
    with pytest.raises(CertificateError) as raised:
        check(cert_pem, bad_key)
    assert raised.value.field == "tls.key"
    assert "c2VjcmV0" not in str(raised.value)


def test_an_encrypted_key_is_refused_with_a_reason() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert_pem, _ = make_cert(["app.example.com"], key=key)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()
    with pytest.raises(CertificateError, match="encrypted") as raised:
        check(cert_pem, encrypted)
    assert raised.value.field == "tls.key"


@pytest.mark.parametrize("other", ["ec", "rsa"])
def test_a_key_that_is_not_the_certificates_is_refused(other: str) -> None:
    cert_pem, key = make_cert(["app.example.com"])
    wrong = (
        ec.generate_private_key(ec.SECP256R1())
        if other == "ec"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    with pytest.raises(CertificateError, match="does not match") as raised:
        check(cert_pem, key_pem(wrong))
    assert raised.value.field == "tls.key"
    assert key_pem(wrong).splitlines()[1] not in str(raised.value)
    assert key.splitlines()[1] not in str(raised.value)


def test_an_expired_certificate_says_when() -> None:
    cert_pem, key = make_cert(
        ["app.example.com"],
        not_before=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
        not_after=datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC),
    )
    with pytest.raises(CertificateError) as raised:
        check(cert_pem, key)
    assert raised.value.field == "tls.cert"
    assert raised.value.message == "the certificate expired at 2025-03-01T12:00:00Z"


def test_a_certificate_not_yet_valid_says_from_when() -> None:
    cert_pem, key = make_cert(
        ["app.example.com"],
        not_before=datetime.datetime(2025, 7, 1, tzinfo=datetime.UTC),
        not_after=datetime.datetime(2025, 9, 1, tzinfo=datetime.UTC),
    )
    with pytest.raises(CertificateError) as raised:
        check(cert_pem, key)
    assert raised.value.field == "tls.cert"
    assert raised.value.message == "the certificate is not valid before 2025-07-01T00:00:00Z"


def test_a_certificate_for_another_host_lists_what_it_covers() -> None:
    cert_pem, key = make_cert(["www.example.com", "example.com"])
    with pytest.raises(CertificateError) as raised:
        check(cert_pem, key, host="app.example.com")
    assert raised.value.field == "tls.cert"
    assert "'app.example.com'" in raised.value.message
    assert "www.example.com, example.com" in raised.value.message


def test_the_common_name_alone_covers_nothing() -> None:
    cert_pem, key = make_cert([])  # CN "x", no subjectAltName
    with pytest.raises(CertificateError, match="no names in its subjectAltName"):
        check(cert_pem, key, host="x")


@pytest.mark.parametrize(
    ("host", "covered"),
    [
        ("a.example.com", True),
        ("A.Example.COM", True),
        ("example.com", False),  # the wildcard stands for exactly one label
        ("a.b.example.com", False),
        ("a.example.org", False),
        ("*.example.com", True),  # a wildcard ingress host needs the same wildcard
    ],
)
def test_wildcard_certificates_cover_one_label(host: str, covered: bool) -> None:
    cert_pem, key = make_cert(["*.example.com"])
    if covered:
        check(cert_pem, key, host=host)
    else:
        with pytest.raises(CertificateError, match="does not cover"):
            check(cert_pem, key, host=host)


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("*.example.com", "a.example.com", True),
        ("*.example.com", ".example.com", False),
        ("f*.example.com", "foo.example.com", False),  # partial-label wildcards: not honoured
        ("*.*.example.com", "a.b.example.com", False),
        ("*.com", "example.com", False),  # no wildcard over a whole top-level domain
        ("a.example.com", "*.example.com", False),
        ("*.example.com", "*.example.com", True),
        ("10.0.0.1", "10.0.0.1", True),
        ("*.0.0.1", "10.0.0.1", False),  # an IP address never matches a wildcard
    ],
)
def test_covers(pattern: str, host: str, expected: bool) -> None:
    assert covers(pattern, host) is expected


def test_an_ip_address_certificate_covers_its_address() -> None:
    cert_pem, key = make_cert(["10.0.0.1"])
    check(cert_pem, key, host="10.0.0.1")


# -- renew_after --------------------------------------------------------------------------------


def test_renew_after_two_thirds_of_the_lifetime() -> None:
    assert renew_after(0, 90 * 86400) == 60 * 86400
    assert renew_after(1000.0, 1300.0) == pytest.approx(1200.0)


# -- valid_host ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "example.com",
        "app.example.com",
        "APP.Example.Com",
        "localhost",
        "a-b.c-d.example",
        "xn--bcher-kva.example",
        "1a.example.com",
        "123.example.com",
        "a" * 63 + ".example.com",
        ".".join(["a" * 63] * 3) + "." + "b" * 61,  # 253 characters
    ],
)
def test_valid_hosts(name: str) -> None:
    assert valid_host(name)
    assert not is_wildcard(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "example.com.",  # no trailing dot
        ".example.com",
        "a..example.com",
        "-a.example.com",
        "a-.example.com",
        "under_score.example.com",
        "sp ace.example.com",
        "a" * 64 + ".example.com",
        ".".join(["a" * 63] * 3) + "." + "b" * 62,  # 254 characters
        "bücher.example",  # give the xn-- form
        "10.0.0.1",  # an address is not a host name
        "example.123",
        "app.example.com\n",
        "app.example.com:80",
        "*",
        "*.com",  # a wildcard over a top-level domain
        "*.*.example.com",
        "a.*.example.com",
        "f*.example.com",
    ],
)
def test_invalid_hosts(name: str) -> None:
    assert not valid_host(name)


def test_wildcards_are_flagged_and_can_be_refused() -> None:
    assert valid_host("*.example.com")
    assert is_wildcard("*.example.com")
    assert not valid_host("*.example.com", allow_wildcard=False)
    assert normalize_host("*.Example.COM") == "*.example.com"


LABEL = st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
TOP = st.from_regex(r"\A[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")


@given(st.lists(LABEL, min_size=0, max_size=4), TOP)
def test_names_made_of_good_labels_are_valid_up_to_253(labels: list[str], top: str) -> None:
    name = ".".join([*labels, top])
    assert valid_host(name) is (len(name) <= 253)
    assert valid_host(name.upper()) is (len(name) <= 253)
    assert valid_host("*." + name) is (len(name) <= 251 and bool(labels))


@given(st.text(alphabet=string.printable + "é_*", min_size=1, max_size=30))
def test_a_name_with_any_character_outside_the_grammar_is_invalid(text: str) -> None:
    allowed = set(string.ascii_letters + string.digits + "-.")
    if set(text) - allowed - {"*"}:
        assert not valid_host(text)
    if valid_host(text):
        assert len(text) <= 253
        assert not text.endswith(".")
        assert all(0 < len(label) <= 63 for label in text.split("."))
