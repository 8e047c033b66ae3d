"""TLS on every connection: real heroctld processes serving HTTPS with the
cluster's own CA (tests/support/cluster.py runs every cluster this way)."""

from __future__ import annotations

import datetime
import http.client
import os
import ssl
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509

from cli.main import cli
from domain.pki import cert_info, fingerprint, issue_server_cert, new_ca, new_csr, new_key
from tests.support import tls as test_tls
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.http import request
from tests.support.worker import WORKER_API_HOST, Worker


@pytest.fixture(scope="module")
def tls_single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("tls"), 1).start()
    try:
        yield c
    finally:
        c.stop()


def _served_serial(port: int, host: str = "127.0.0.1") -> int:
    """The serial of the certificate a new connection to the server gets."""
    ctx = test_tls.context()
    conn = http.client.HTTPSConnection(host, port, timeout=5, context=ctx)
    try:
        conn.connect()
        der = conn.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
    finally:
        conn.close()
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_a_client_without_the_ca_is_refused(tls_single: Cluster) -> None:
    s = tls_single.servers[0]
    assert s.url.startswith("https://")
    with pytest.raises(urllib.error.URLError) as err:
        urllib.request.urlopen(s.url + "/v1/health/live", timeout=5)  # the system's trust store
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError)
    with pytest.raises(OSError):  # plain HTTP to the HTTPS port gets no HTTP answer
        urllib.request.urlopen(f"http://127.0.0.1:{s.api_port}/v1/health/live", timeout=5)
    ctx = ssl.create_default_context(cafile=str(s.ca_file))  # the cluster's CA: trusted
    with urllib.request.urlopen(s.url + "/v1/health/live", timeout=5, context=ctx) as r:
        assert r.status == 200


def test_the_ca_route_serves_the_ca_without_a_token(tls_single: Cluster) -> None:
    s = tls_single.servers[0]
    r = request("GET", s.url + "/v1/cluster/ca")  # no token
    assert r.status == 200, r.raw
    pem = s.ca_file.read_text()
    assert r.raw.decode() == pem
    assert r.header("X-HeroCtl-CA-Fingerprint") == fingerprint(pem)
    assert r.header("X-HeroCtl-CA-MAC")
    tls_dir = s.data_dir / "tls"
    assert stat.S_IMODE(os.stat(tls_dir / "server-key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tls_dir).st_mode) == 0o700
    key = (tls_dir / "server-key.pem").read_text().strip().splitlines()[1]
    assert key not in s.log()  # no key material in the log


def test_three_servers_forward_relay_and_join_over_tls(tmp_path: Path) -> None:
    c = Cluster(tmp_path, 3)
    try:
        c.start()
        cas = {fingerprint(s.ca_file.read_text()) for s in c.servers}
        assert len(cas) == 1  # one CA, every server signed its own certificate
        serials = {_served_serial(s.api_port) for s in c.servers}
        assert len(serials) == 3
        follower = c.followers()[0]
        assert follower.post("/v1/jobs", {"name": "through-follower"}).status == 201
        # Forwarded to the leader over HTTPS (leader_or_forward verifies it).
        joiner = c.add_server("server-4")
        joiner.start(join=f"127.0.0.1:{follower.api_port}")
        wait_until(joiner.ready, 30, message="the 4th server serves")
        assert fingerprint(joiner.ca_file.read_text()) in cas
        assert joiner.get("/v1/jobs/through-follower").status == 200
        peers = joiner.get("/v1/cluster/peers").body
        assert len(peers) == 4 and all(p["api_address"].startswith("https://") for p in peers)
        # A server of another cluster cannot pass for this one's: the joiner
        # checks the CA's MAC before it sends its credential, and refuses.
        other = Cluster(tmp_path / "other", 1)
        (tmp_path / "other").mkdir()
        other.start()
        try:
            stray = Server("stray", tmp_path, c.cluster_key)
            stray.start(join=f"127.0.0.1:{other.servers[0].api_port}")
            assert stray.proc is not None and stray.proc.wait(30) == 2
            assert "without this cluster's MAC" in stray.log()
        finally:
            other.stop()
    finally:
        c.stop()


def test_a_certificate_rotates_without_downtime(tmp_path: Path) -> None:
    c = Cluster(tmp_path, 1, env={"HEROCTL_TLS_CERT_LIFETIME": "4s"})
    s = c.servers[0]
    try:
        c.start()
        kept = http.client.HTTPSConnection(
            "127.0.0.1", s.api_port, timeout=5, context=test_tls.context()
        )
        seen: list[int] = [_served_serial(s.api_port)]
        answers = 0

        def rotated() -> bool:
            nonlocal answers
            kept.request("GET", "/v1/health/live")  # the same connection all along
            response = kept.getresponse()
            response.read()
            assert response.status == 200
            assert s.get("/v1/health/live").status == 200  # a new connection each time
            answers += 1
            serial = _served_serial(s.api_port)
            if serial != seen[-1]:
                seen.append(serial)
            return len(seen) >= 3

        wait_until(rotated, 30, interval=0.1, message="two rotations")
        kept.close()
        assert answers > 10
        file_serial = x509.load_pem_x509_certificate(
            (s.data_dir / "tls" / "server.pem").read_bytes()
        ).serial_number
        assert file_serial in seen
        assert "serving a new certificate" in s.log()
    finally:
        c.stop()


def _heroctl(home: Path, *args: str, input: str | None = None) -> Result:
    runner = CliRunner(
        env={
            "HEROCTL_ADDR": None,
            "HEROCTL_TOKEN": None,
            "HEROCTL_CACERT": None,
            "XDG_CONFIG_HOME": str(home),
        }
    )
    return runner.invoke(cli, list(args), input=input, catch_exceptions=False)


def test_the_cli_pins_the_ca_at_login_and_refuses_another(
    tls_single: Cluster, tmp_path: Path
) -> None:
    s = tls_single.servers[0]
    token = str(s.token)
    expected = fingerprint(s.ca_file.read_text())
    pinned = tmp_path / "heroctl" / "ca.pem"

    r = _heroctl(tmp_path, "--address", s.url, "cluster", "status")
    assert r.exit_code == 1 and "not verify against the system's trust store" in r.output

    r = _heroctl(tmp_path, "login", "--address", s.url, "--token", token, input="n\n")
    assert r.exit_code == 1 and expected in r.output and not pinned.exists()

    r = _heroctl(tmp_path, "login", "--address", s.url, "--token", token, input="y\n")
    assert r.exit_code == 0, r.output
    assert f"SHA256 fingerprint: {expected}" in r.output
    assert fingerprint(pinned.read_text()) == expected
    r = _heroctl(tmp_path, "--address", s.url, "--json", "cluster", "status")
    assert r.exit_code == 0, r.output  # verified with the pinned CA

    # Another cluster (another CA) at an address: refused loudly, nothing re-pinned.
    other = Cluster(tmp_path / "other", 1)
    (tmp_path / "other").mkdir()
    other.start()
    try:
        o = other.servers[0]
        r = _heroctl(tmp_path, "--address", o.url, "--token", str(o.token), "cluster", "status")
        assert r.exit_code == 1 and "the cluster's CA changed" in r.output
        r = _heroctl(tmp_path, "login", "--address", o.url, "--token", str(o.token), input="y\n")
        assert r.exit_code == 1 and "the cluster's CA changed" in r.output
        assert fingerprint(pinned.read_text()) == expected
        r = _heroctl(
            tmp_path,
            "login",
            "--address",
            o.url,
            "--token",
            str(o.token),
            "--ca-fingerprint",
            expected,
        )
        assert r.exit_code == 1 and "the cluster's CA changed" in r.output
        # The operator gives the new fingerprint: trusted, pinned instead.
        new = fingerprint(o.ca_file.read_text())
        r = _heroctl(
            tmp_path, "login", "--address", o.url, "--token", str(o.token), "--ca-fingerprint", new
        )
        assert r.exit_code == 0, r.output
        assert fingerprint(pinned.read_text()) == new
    finally:
        other.stop()


def test_a_worker_trusts_the_ca_by_fingerprint_and_serves_tls(
    tls_single: Cluster, tmp_path: Path
) -> None:
    s = tls_single.servers[0]
    wrong = "sha256:" + "00" * 32
    env = {"HEROCTL_AGENT_DRIVER": "exec"}
    refused = Worker(tls_single, "w-wrong", tmp_path, env=env, ca_fingerprint=wrong).start()
    try:
        assert refused.proc is not None and refused.proc.wait(30) == 2
        assert "refusing it" in refused.log()
    finally:
        refused.kill()
    good = fingerprint(s.ca_file.read_text())
    worker = Worker(tls_single, "w-good", tmp_path, env=env, ca_fingerprint=good).start()
    try:
        wait_until(
            lambda: any(n["name"] == "w-good" for n in s.get("/v1/nodes").body),
            30,
            message="the worker registered over TLS",
        )
        assert fingerprint((worker.data_dir / "ca.pem").read_text()) == good
        # Its agent API is TLS too, with a certificate the cluster signed for its address.
        wait_until(
            lambda: _served_serial(worker.api_port, WORKER_API_HOST),
            15,
            message="the agent API's TLS",
        )
        assert stat.S_IMODE(os.stat(worker.data_dir / "agent" / "api-key.pem").st_mode) == 0o600
    finally:
        worker.stop()
        worker.remove_tasks()


def test_files_mode_serves_your_own_pki(tmp_path: Path) -> None:
    ca = new_ca("own")
    leaf = issue_server_cert(ca, "server-1", ["127.0.0.1"], datetime.timedelta(days=1))
    files = {"ca.pem": ca.cert_pem, "cert.pem": leaf.cert_pem, "key.pem": leaf.key_pem}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    test_tls.trust(tmp_path / "ca.pem")
    env = {
        "HEROCTL_TLS_MODE": "files",
        "HEROCTL_TLS_CERT_FILE": str(tmp_path / "cert.pem"),
        "HEROCTL_TLS_KEY_FILE": str(tmp_path / "key.pem"),
        "HEROCTL_TLS_CA_FILE": str(tmp_path / "ca.pem"),
    }
    c = Cluster(tmp_path, 1, env=env)
    try:
        c.start()
        s = c.servers[0]
        assert _served_serial(s.api_port) == cert_info(leaf.cert_pem).serial
        r = request("GET", s.url + "/v1/cluster/ca")
        assert r.status == 200 and r.raw.decode() == ca.cert_pem
        assert not (s.data_dir / "tls").exists()  # no cluster CA made or used
    finally:
        c.stop()


def test_no_node_certificate_for_a_server_s_address(tls_single: Cluster) -> None:
    """Servers trust each other by host name under the cluster CA: a node (any
    `nodes: write` token) gets no certificate for an address a server has."""
    s = tls_single.servers[0]
    csr = new_csr(new_key(), "n-impostor")
    for host in ("127.0.0.1", "localhost", s.name):
        reply = s.post(
            "/v1/nodes/register",
            {
                "id": "n-impostor",
                "name": "impostor",
                "agent_api": f"https://{host}:7072",
                "agent_secret": "s" * 40,
                "agent_csr": csr,
            },
        )
        assert reply.status == 403 and "cannot stand for a server" in reply.body["message"], reply
    assert s.get("/v1/nodes/n-impostor").status == 404  # nothing registered
