"""Which addresses a webhook may reach, and the Standard Webhooks signature (pure)."""

from __future__ import annotations

import pytest

from domain import webhook_signing as wd
from domain.webhook_targets import first_refusal, ip_literal, refusal


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1%eth0", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("100.64.0.1", "not globally routable"),  # shared address space (CGNAT)
        ("::ffff:127.0.0.1", "loopback"),  # IPv4 inside IPv6
        ("::ffff:10.1.2.3", "private"),
        ("2002:7f00:1::1", "loopback"),  # 6to4
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ],
)
def test_non_public_addresses_are_refused_with_why(address: str, kind: str) -> None:
    assert refusal(address) == f"{address} ({kind})"


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(address) is None


def test_names_are_not_literals_and_one_bad_address_refuses_the_lot() -> None:
    assert ip_literal("example.com") is None and ip_literal("2130706433") is None
    assert str(ip_literal("fe80::1%eth0")) == "fe80::1"
    assert first_refusal(["8.8.8.8", "1.1.1.1"]) is None
    assert first_refusal(["8.8.8.8", "10.0.0.1", "::1"]) == "10.0.0.1 (private)"
    assert refusal("not-an-ip") == "not-an-ip (not an IP address)"


def test_standard_webhooks_signature_matches_the_specs_test_vector() -> None:
    """The vector of the Standard Webhooks reference libraries' sign test."""
    secret = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    got = wd.standard_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_standard_keys_and_headers() -> None:
    assert wd.standard_key(b"whk_a1b2c3") == b"whk_a1b2c3"  # any other secret: its own bytes
    assert wd.standard_key(b"whsec_" + b"QUJD" * 8) == b"ABC" * 8
    for bad in (b"whsec_", b"whsec_QUJD", b"whsec_not*base64", b"whsec_" + b"QUJD" * 30):
        assert wd.standard_key(bad) is None  # not base64 of 24-64 bytes
    did, raw = "wh_0000000000000001-7", b'{"a":1}'
    headers = wd.headers(b"whk_a1b2c3", raw, did, "job.deployed", 1_700_000_100.9)
    assert headers["webhook-id"] == did == headers["X-HeroCtl-Delivery"]
    assert headers["webhook-timestamp"] == "1700000100" == headers["X-HeroCtl-Timestamp"]
    assert headers["webhook-signature"] == wd.standard_signature(
        b"whk_a1b2c3", did, 1700000100, raw
    )
    assert headers["X-HeroCtl-Signature"] == wd.signature(b"whk_a1b2c3", raw)  # unchanged
    other = wd.headers(b"whk_a1b2c3", raw, did, "job.deployed", 1_700_000_101)
    assert other["webhook-signature"] != headers["webhook-signature"]  # the timestamp is signed
    assert other["X-HeroCtl-Signature"] == headers["X-HeroCtl-Signature"]
