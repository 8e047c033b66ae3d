"""The ACME client against a real pebble, its validator reaching a real responder on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store

from domain.certificates import check_pair
from heroctld.controllers.acme import AcmeClient, AcmeError, AcmeSettings, IssuedCertificate
from tests.heroctld.controllers.acme.responder import (
    ChallengeResponder,
    PublishesNothing,
    TlsAlpnOnly,
)
from tests.support.pebble import Pebble, free_port

HOST = "app.example.test"


def verify_chain(issued: IssuedCertificate, pebble: Pebble, host: str) -> None:
    """Verify the full chain up to this pebble run's root, for ``host`` (cryptography's verifier)."""
    chain = x509.load_pem_x509_certificates(issued.cert_pem.encode())
    roots = x509.load_pem_x509_certificates(pebble.issuing_roots_pem().encode())
    verifier = (
        PolicyBuilder()
        .store(Store(roots))
        .time(datetime.datetime.now(datetime.UTC))
        .build_server_verifier(x509.DNSName(host))
    )
    built = verifier.verify(chain[0], chain[1:])
    assert built[-1] in roots


async def test_account_is_created_and_found_again_with_the_same_key(settings: AcmeSettings) -> None:
    first = AcmeClient(settings, None)
    again = AcmeClient(settings, first.account_key_pem)
    other = AcmeClient(settings, None)
    try:
        url = await first.ensure_account()
        assert url.startswith(settings.directory.rsplit("/", 1)[0])
        assert await first.ensure_account() == url  # idempotent
        assert await again.ensure_account() == url
        assert again.account_url == url
        assert await other.ensure_account() != url
    finally:
        for client in (first, again, other):
            await client.close()
    key = serialization.load_pem_private_key(first.account_key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"


async def test_http01_issuance_gives_a_chain_that_verifies(
    settings: AcmeSettings, pebble: Pebble, responder: ChallengeResponder, tmp_path: Path
) -> None:
    client = AcmeClient(settings, None)
    try:
        await client.ensure_account()
        started = time.monotonic()
        issued = await client.issue(HOST, responder)
        elapsed = time.monotonic() - started
    finally:
        await client.close()
    print(f"issuance via http-01 (order -> chain): {elapsed:.3f}s")
    verify_chain(issued, pebble, HOST)
    # The same chain passes `openssl verify` with pebble's root (no verify=False anywhere).
    chain = x509.load_pem_x509_certificates(issued.cert_pem.encode())
    assert len(chain) >= 2  # leaf + pebble's intermediate
    (tmp_path / "root.pem").write_text(pebble.issuing_roots_pem())
    (tmp_path / "leaf.pem").write_bytes(chain[0].public_bytes(serialization.Encoding.PEM))
    (tmp_path / "rest.pem").write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain[1:])
    )
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", "root.pem", "-untrusted", "rest.pem", "leaf.pem"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr

    check_pair(issued.cert_pem, issued.key_pem, HOST, time.time())
    assert issued.hosts == (HOST,)
    assert issued.not_after == int(chain[0].not_valid_after_utc.timestamp())
    assert issued.not_before <= time.time() < issued.not_after
    assert (
        issued.sha256
        == hashlib.sha256(chain[0].public_bytes(serialization.Encoding.DER)).hexdigest()
    )
    assert issued.serial == format(chain[0].serial_number, "x")
    assert issued.not_before < issued.renew_after < issued.not_after
    assert "PRIVATE KEY" not in repr(issued)
    # The validator fetched the token from our responder; the answer is gone afterwards.
    assert any(request.startswith(HOST) for request in responder.http_requests)
    assert responder.published == [("http-01", HOST)]
    assert responder.retracted == [("http-01", HOST)]
    assert responder.http_answers == {}


async def test_failed_validation_raises_the_ca_problem_and_retracts(
    settings: AcmeSettings, pebble: Pebble
) -> None:
    publisher = PublishesNothing()
    client = AcmeClient(settings, None)
    started = time.monotonic()
    try:
        with pytest.raises(AcmeError) as raised:
            await client.issue(HOST, publisher)
    finally:
        await client.close()
    assert time.monotonic() - started < settings.timeout
    error = raised.value
    assert "urn:ietf:params:acme:error:" in error.message, error.message
    assert error.problem_type and error.problem_type.startswith("urn:ietf:params:acme:error:")
    assert HOST in error.message and "http-01" in error.message
    assert [host for host, _ in publisher.retracted] == [HOST]
    assert "PRIVATE KEY" not in error.message


async def test_validation_that_never_completes_stops_at_the_deadline(
    pebble: Pebble, responder: ChallengeResponder
) -> None:
    responder.stall_http = True  # the validator's requests hang: the authorization stays pending
    settings = AcmeSettings(
        pebble.directory_url, ca_bundle=pebble.ca_bundle, poll_interval=0.05, timeout=1.5
    )
    client = AcmeClient(settings, None)
    await client.ensure_account()  # the deadline is per issuance, not registration
    started = time.monotonic()
    try:
        with pytest.raises(AcmeError, match="timed out after 1.5s"):
            await client.issue(HOST, responder)
    finally:
        await client.close()
    # Stopped at the deadline (an authorization poll in flight and a loaded
    # machine's delay on top): the stalled validation would hold it forever.
    assert time.monotonic() - started < 1.5 + 5
    assert responder.retracted == [("http-01", HOST)]


async def test_renewal_with_a_new_key_gives_a_new_serial(
    settings: AcmeSettings, pebble: Pebble, responder: ChallengeResponder
) -> None:
    client = AcmeClient(settings, None)
    try:
        first = await client.issue(HOST, responder)
        renewed = await client.issue(HOST, responder)
    finally:
        await client.close()
    verify_chain(renewed, pebble, HOST)
    assert renewed.serial != first.serial
    assert renewed.sha256 != first.sha256
    assert renewed.key_pem != first.key_pem


async def test_issuing_with_a_given_key_uses_it(
    settings: AcmeSettings, responder: ChallengeResponder
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    client = AcmeClient(settings, None)
    try:
        issued = await client.issue(HOST, responder, key_pem=key_pem)
    finally:
        await client.close()
    assert issued.key_pem == key_pem
    leaf = x509.load_pem_x509_certificates(issued.cert_pem.encode())[0]
    assert leaf.public_key() == key.public_key()


async def test_concurrent_issuances_for_two_hosts(
    settings: AcmeSettings, pebble: Pebble, responder: ChallengeResponder
) -> None:
    client = AcmeClient(settings, None)
    try:
        a, b = await asyncio.gather(
            client.issue("a.example.test", responder), client.issue("b.example.test", responder)
        )
    finally:
        await client.close()
    verify_chain(a, pebble, "a.example.test")
    verify_chain(b, pebble, "b.example.test")
    assert sorted(responder.retracted) == [
        ("http-01", "a.example.test"),
        ("http-01", "b.example.test"),
    ]


async def test_tls_alpn01_issuance_when_the_publisher_answers_only_that(
    settings: AcmeSettings, pebble: Pebble, responder: ChallengeResponder
) -> None:
    client = AcmeClient(settings, None)
    try:
        issued = await client.issue(HOST, TlsAlpnOnly(responder))
    finally:
        await client.close()
    verify_chain(issued, pebble, HOST)
    assert HOST in responder.alpn_handshakes  # the validator came over TLS, SNI = host
    assert responder.http_requests == []
    assert responder.published == [("tls-alpn-01", HOST)]
    assert responder.retracted == [("tls-alpn-01", HOST)]
    assert responder.alpn_contexts == {}


async def test_wildcards_and_bad_names_are_refused_before_any_order(
    settings: AcmeSettings, responder: ChallengeResponder
) -> None:
    client = AcmeClient(settings, None)
    try:
        for name in ("*.example.test", "bad_name.example.test", "trailing.example.test."):
            with pytest.raises(AcmeError, match="not a host name"):
                await client.issue(name, responder)
    finally:
        await client.close()
    assert responder.published == []


async def test_an_untrusted_ca_is_an_error_not_a_bypass(pebble: Pebble) -> None:
    client = AcmeClient(AcmeSettings(pebble.directory_url, ca_bundle=None), None)
    try:
        with pytest.raises(AcmeError, match="cannot reach the ACME server.*SSLError"):
            await client.ensure_account()
    finally:
        await client.close()


async def test_an_unreachable_directory_is_an_acme_error() -> None:
    url = f"https://127.0.0.1:{free_port()}/dir"
    client = AcmeClient(AcmeSettings(url, request_timeout=2.0), None)
    try:
        with pytest.raises(AcmeError, match="cannot reach the ACME server"):
            await client.ensure_account()
    finally:
        await client.close()


def test_a_bad_account_key_is_refused_without_echoing_it() -> None:
    secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0c2VjcmV0\n-----END PRIVATE KEY-----\n"
    with pytest.raises(AcmeError) as raised:
        AcmeClient(AcmeSettings("https://127.0.0.1:1/dir"), secret)
    assert "c2VjcmV0" not in str(raised.value)


async def test_nobody_listening_on_the_validation_port_is_a_connection_problem(
    pebble_server: Callable[..., Pebble], responder: ChallengeResponder
) -> None:
    silent = pebble_server()  # its validator dials ports nobody answers on
    client = AcmeClient(AcmeSettings(silent.directory_url, ca_bundle=silent.ca_bundle), None)
    try:
        with pytest.raises(AcmeError) as raised:
            await client.issue(HOST, responder)
    finally:
        await client.close()
    assert raised.value.problem_type == "urn:ietf:params:acme:error:connection"
    assert "connection refused" in raised.value.message
    assert responder.retracted == [("http-01", HOST)]
