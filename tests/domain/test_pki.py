"""domain.pki: the cluster CA, server certificates, the sealed CA key and its MAC."""

from __future__ import annotations

import datetime
import ssl
import time

import pytest

from domain.pki import (
    CaKeys,
    CaOpenError,
    cert_info,
    fingerprint,
    issue_server_cert,
    key_id,
    new_ca,
    normalize_fingerprint,
)
from raft.keys import generate_cluster_key


def test_a_server_certificate_chains_to_the_ca_and_names_its_addresses(tmp_path) -> None:
    ca = new_ca("c1")
    leaf = issue_server_cert(
        ca,
        "server-1",
        ["10.0.0.11", "server-1", "127.0.0.1", "localhost", "10.0.0.11"],
        datetime.timedelta(days=1),
    )
    info = cert_info(leaf.cert_pem)
    assert info.names == {"10.0.0.11", "server-1", "127.0.0.1", "localhost"}
    assert info.issuer_key_id == key_id(ca.cert_pem)
    assert 86_000 < info.not_after - time.time() <= 86_400
    assert info.renew_at() - time.time() == pytest.approx(86_400 * 2 / 3, abs=300)
    (tmp_path / "cert.pem").write_text(leaf.cert_pem)
    (tmp_path / "key.pem").write_text(leaf.key_pem)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")  # a matching pair
    client = ssl.create_default_context(cadata=ca.cert_pem)
    assert client.get_ca_certs()[0]["subject"][1][0][1] == "HeroCtl cluster CA c1"


def test_the_ca_key_opens_only_with_the_cluster_key_and_never_shows() -> None:
    ca = new_ca("c1")
    key = generate_cluster_key()
    sealed = CaKeys(key).seal(ca.key_pem)
    assert ca.key_pem.encode() not in sealed["ciphertext"]
    assert CaKeys(key).open(sealed) == ca.key_pem
    with pytest.raises(CaOpenError) as err:
        CaKeys(generate_cluster_key()).open(sealed)
    assert "PRIVATE" not in str(err.value)


def test_the_mac_proves_the_cluster_key() -> None:
    pem = new_ca("c1").cert_pem
    key = generate_cluster_key()
    mac = CaKeys(key).mac(pem)
    assert CaKeys(key).mac_ok(pem, mac)
    assert not CaKeys(key).mac_ok(pem + "\n", mac)
    assert not CaKeys(generate_cluster_key()).mac_ok(pem, mac)
    assert not CaKeys(key).mac_ok(pem, None)


def test_fingerprints_are_compared_in_one_form() -> None:
    pem = new_ca("c1").cert_pem
    fp = fingerprint(pem)
    assert fp.startswith("sha256:") and len(fp) == 7 + 64
    colons = ":".join(fp[7:][i : i + 2] for i in range(0, 64, 2)).upper()
    assert normalize_fingerprint(f"SHA256:{colons}") == fp
    assert normalize_fingerprint(fp[7:]) == fp
    with pytest.raises(ValueError):
        normalize_fingerprint("sha256:abc")
