"""tls-alpn-01 end to end: ``[acme] challenge``, the nodes the leader waits
for, its check that a node shows the challenge certificate (real TLS on
loopback), and a real 3-server cluster whose embedded agents run real nginx,
against a real pebble whose validator may only reach one node's HTTPS port
(its HTTP port for http-01 leads nowhere), so the certificate can only come
from tls-alpn-01."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from agent.ingress import NginxSupervisor, Paths
from agent.ingress.process import reap_stale
from heroctld.config import read_config
from heroctld.config_tables import ConfigError
from heroctld.controllers.acme.challenges import tls_alpn01_certificate
from heroctld.controllers.acme.model import publisher_challenge_types
from heroctld.controllers.certificate_alpn import wait_until_shown
from heroctld.controllers.certificate_challenges import (
    IngressEndpoint,
    ReplicatedChallenges,
    ingress_endpoints,
)
from heroctld.controllers.certificates import CertificateSettings
from tests.heroctld.controllers.test_certificates import web_job
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.ingress_cluster import wait_ingress_serving
from tests.support.pebble import Pebble, free_port, running_pebble

# --- settings and decisions --------------------------------------------------------------


def test_acme_challenge_is_http01_unless_set_to_tls_alpn01() -> None:
    assert read_config(None, {}).acme.challenge == "http-01"
    cfg = read_config(None, {"HEROCTL_ACME_CHALLENGE": "tls-alpn-01"})
    assert cfg.acme.challenge == "tls-alpn-01"
    with pytest.raises(ConfigError, match="HEROCTL_ACME_CHALLENGE"):
        read_config(None, {"HEROCTL_ACME_CHALLENGE": "dns-01"})


def test_the_publisher_answers_the_one_configured_type() -> None:
    replica: Any = object()  # never written to here
    assert publisher_challenge_types(ReplicatedChallenges(replica)) == ("http-01",)
    with pytest.raises(ValueError, match="key material"):
        ReplicatedChallenges(replica, challenge="tls-alpn-01")
    with pytest.raises(ValueError, match="unknown ACME challenge"):
        ReplicatedChallenges(replica, challenge="dns-01")


def test_tls_alpn01_waits_for_the_nodes_serving_https() -> None:
    nodes = [
        {"name": "a", "status": "ready", "address": "10.0.0.1", "ingress": {"enabled": True, "http_port": 80, "https_port": 443}},
        {"name": "b", "status": "ready", "address": "10.0.0.2", "ingress": {"enabled": True, "http_port": 80, "https_port": 0}},
        {"name": "c", "status": "ready", "address": "10.0.0.3", "ingress": {"enabled": True, "http_port": 0, "https_port": 8443}},
        {"name": "d", "status": "down", "address": "10.0.0.4", "ingress": {"enabled": True, "http_port": 80, "https_port": 443}},
    ]  # fmt: skip
    assert [e.node for e in ingress_endpoints(nodes)] == ["a", "b"]
    found = ingress_endpoints(nodes, "tls-alpn-01")
    assert [(e.node, e.https_port) for e in found] == [("a", 443), ("c", 8443)]


# --- the check that a node shows the challenge certificate (real TLS) ---------------------


@dataclass
class TlsNode:
    endpoint: IngressEndpoint
    handshakes: list[tuple[str | None, str | None]]  # (SNI, ALPN agreed)


async def acme_tls_server(folder: Path, host: str, cert_pem: str, key_pem: str) -> Any:
    """A TLS server that speaks acme-tls/1 only and shows ``cert_pem``."""
    cert_file, key_file = folder / f"{host}.crt", folder / f"{host}.key"
    cert_file.write_text(cert_pem)
    key_file.touch(mode=0o600)
    key_file.write_text(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["acme-tls/1"])
    names: list[str | None] = []

    def sni(_tls: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        names.append(name)

    context.sni_callback = sni
    handshakes: list[tuple[str | None, str | None]] = []

    async def handle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = writer.get_extra_info("ssl_object")
        handshakes.append((names[-1] if names else None, tls.selected_alpn_protocol()))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    return server, TlsNode(IngressEndpoint("n1", "127.0.0.1", 0, port), handshakes)


@pytest.fixture
async def tls_node(tmp_path: Path) -> AsyncIterator[tuple[TlsNode, str]]:
    cert_pem, key_pem = tls_alpn01_certificate("app.example.test", "tok.thumb")
    server, node = await acme_tls_server(tmp_path, "app.example.test", cert_pem, key_pem)
    try:
        yield node, cert_pem
    finally:
        server.close()
        await server.wait_closed()


async def test_wait_until_shown_compares_the_certificate_and_gives_up_at_its_deadline(
    tls_node: tuple[TlsNode, str],
) -> None:
    node, cert_pem = tls_node
    # Shown: it returns without waiting out its deadline (30 s; the bounds
    # leave a loaded machine room, speed targets live in bench/).
    started = time.monotonic()
    assert await wait_until_shown([node.endpoint], "app.example.test", cert_pem, 30) == []
    assert time.monotonic() - started < 10
    assert node.handshakes[0] == ("app.example.test", "acme-tls/1")  # the validator's SNI
    other, _ = tls_alpn01_certificate("app.example.test", "another.thumb")
    # Never shown: it gives up at its deadline (plus one handshake in flight, 2 s at most).
    started = time.monotonic()
    missing = await wait_until_shown([node.endpoint], "app.example.test", other, 0.5)
    assert missing == [node.endpoint] and 0.5 <= time.monotonic() - started < 0.5 + 2 + 5
    nobody = IngressEndpoint("n2", "127.0.0.1", 0, free_port())
    assert await wait_until_shown([nobody], "app.example.test", cert_pem, 0.3) == [nobody]


# --- a real cluster, real nginx on every node, a real pebble -------------------------------


def _server_passes_the_challenge() -> str | None:
    """None when heroctld.server hands ``[acme] challenge`` to the controller."""
    from heroctld.server import certificate_settings  # noqa: PLC0415

    settings: CertificateSettings = certificate_settings(
        read_config(None, {"HEROCTL_ACME_CHALLENGE": "tls-alpn-01"})
    )
    if settings.challenge == "tls-alpn-01":
        return None
    return "heroctld/server.py's certificate_settings does not pass cfg.acme.challenge on yet"


def _nginx_cannot_answer() -> str | None:
    found, reason = NginxSupervisor.probe()
    if found is None:
        return reason
    return NginxSupervisor(Path("/nonexistent/heroctl-probe")).alpn_unavailable


_SKIP = _nginx_cannot_answer() or _server_passes_the_challenge()
HOST = "tls.example.test"


@dataclass
class AlpnCluster:
    cluster: Cluster
    pebble: Pebble

    def any(self) -> Server:
        return self.cluster.live()[0]


def https_port(server: Server) -> int:
    return int(server.env["HEROCTL_INGRESS_HTTPS_PORT"])


def live_conf(server: Server) -> str:
    return (server.data_dir / "agent" / "ingress" / "conf" / "nginx.conf").read_text()


@pytest.fixture(scope="module")
def alpn_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlpnCluster]:
    if _SKIP:
        pytest.skip(_SKIP)
    root = tmp_path_factory.mktemp("certificates-alpn")
    (root / "cluster").mkdir()
    cluster = Cluster(root / "cluster", 3, agent=True)
    for server in cluster.servers:
        server.env["HEROCTL_INGRESS_HTTP_PORT"] = str(free_port())
        server.env["HEROCTL_INGRESS_HTTPS_PORT"] = str(free_port())
        server.env["HEROCTL_INGRESS_BIND"] = "127.0.0.1"
    closed = free_port()  # pebble's http-01 port: nothing ever listens there
    validated = https_port(cluster.servers[0])
    try:
        with running_pebble(root / "pebble", closed, validated) as pebble:
            for server in cluster.servers:
                server.env.update(
                    {
                        "HEROCTL_ACME_DIRECTORY": pebble.directory_url,
                        "HEROCTL_ACME_CA_BUNDLE": pebble.ca_bundle,
                        "HEROCTL_ACME_EMAIL": "ops@example.test",
                        "HEROCTL_ACME_CHALLENGE": "tls-alpn-01",
                    }
                )
            try:
                cluster.start()
                wait_ingress_serving(cluster, 3, https=True)
                yield AlpnCluster(cluster, pebble)
            finally:
                cluster.stop()
    finally:
        for server in cluster.servers:
            prefix = server.data_dir / "agent" / "ingress"
            if (prefix / "run").exists():
                reap_stale(Paths.in_prefix(prefix))


def shown_certificate(port: int, host: str, roots_pem: str) -> x509.Certificate | None:
    """The certificate an HTTPS client asking for ``host`` gets from the
    ingress on ``port``, verified for ``host`` up to pebble's root (None: it
    does not verify, e.g. still the fallback certificate)."""
    context = ssl.create_default_context(cadata=roots_pem)
    with (
        contextlib.suppress(ssl.SSLCertVerificationError),
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)
    return None


def test_a_host_gets_its_certificate_by_tls_alpn01_only(alpn_cluster: AlpnCluster) -> None:
    cluster = alpn_cluster.cluster
    started = time.monotonic()
    assert alpn_cluster.any().post("/v1/jobs", web_job("alpn", HOST)).status == 201

    def valid() -> dict[str, Any] | None:
        reply = alpn_cluster.any().get(f"/v1/ingress/{HOST}")
        assert reply.status == 200, reply.body
        cert = reply.body["cert"]
        assert cert["status"] != "failed", cert
        return cert if cert["status"] == "valid" else None

    cert = wait_until(valid, 60, 0.1, f"the certificate of {HOST}")
    print(f"\n{HOST}: job submitted -> valid by tls-alpn-01 in {time.monotonic() - started:.2f}s")
    assert cert["issuer"].startswith("Pebble Intermediate CA") and cert["last_error"] is None
    roots = alpn_cluster.pebble.issuing_roots_pem()
    # Every node serves it over HTTPS (the chain verifies for the host up to pebble's root).
    for server in cluster.servers:

        def serves(server: Server = server) -> x509.Certificate | None:
            shown = shown_certificate(https_port(server), HOST, roots)
            return shown if shown and shown.serial_number == int(cert["serial"], 16) else None

        wait_until(serves, 15, 0.1, f"{server.name} serving the certificate of {HOST}")
    leader = cluster.leader()
    # Every node was confirmed before the CA looked; the challenge is gone, and with it the hop.
    assert not re.search(r"tls-alpn-01 challenge of \S+ is not served", leader.log())
    for server in cluster.servers:
        wait_until(lambda s=server: "stream {" not in live_conf(s), 15, 0.1, "the hop removed")
