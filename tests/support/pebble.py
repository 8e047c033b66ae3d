"""A real ACME server (Let's Encrypt's pebble) on loopback, for any test.

Debian's ``pebble`` package ships neither the certificate for pebble's own
HTTPS listener nor a resolver that stays on the machine, so this module:

* makes a throwaway CA and a server certificate for ``127.0.0.1``/``localhost``
  (``ca_bundle`` is the CA file a client verifies pebble's HTTPS with: no
  ``verify=False`` anywhere);
* starts ``pebble-challtestsrv`` as pebble's DNS server, answering every name
  with 127.0.0.1, so the validator connects to the test's own responder on
  ``http_port`` (http-01) or ``tls_port`` (tls-alpn-01);
* starts ``pebble`` without its random validation delay or nonce rejection, and
  waits until its directory answers.

Pebble makes a new root CA at every start: :meth:`Pebble.issuing_roots_pem`
asks the running process for it (never a cached copy from another run).

Use :func:`running_pebble` (a context manager) or the ``pebble_server`` fixture
(a factory: ``pebble_server(http_port=..., tls_port=...)``; every pebble it
started is stopped at teardown, also when the test fails).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import ports

PEBBLE = "/usr/bin/pebble"
CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

# Fast and deterministic: no random 0-15 s wait before validating, no 5 % of
# good nonces rejected, a fresh authorization for every order.
PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (also free for UDP, for the DNS server)."""
    return ports.free_port(udp=True)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _throwaway_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A CA (cert only kept) and a server certificate for 127.0.0.1/localhost signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "heroctl test pebble HTTPS CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "https-ca.pem"
    cert_path = directory / "https-cert.pem"
    key_path = directory / "https-key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        key_path,
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return ca_path, cert_path, key_path


@dataclass
class Pebble:
    """One pebble and its DNS server, on loopback. Build with :meth:`start`."""

    directory_path: Path
    http_port: int
    tls_port: int
    listen_port: int = 0
    management_port: int = 0
    dns_port: int = 0
    ca_bundle: str = ""
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.listen_port}/dir"

    @property
    def management_url(self) -> str:
        return f"https://127.0.0.1:{self.management_port}"

    @classmethod
    def start(cls, directory: Path, http_port: int, tls_port: int) -> Pebble:
        """Start challtestsrv and pebble; return once the directory answers (or raise, stopped)."""
        directory.mkdir(parents=True, exist_ok=True)
        pebble = cls(directory, http_port, tls_port)
        try:
            pebble._start()
        except BaseException:
            pebble.stop()
            raise
        return pebble

    def _start(self) -> None:
        ca_path, cert_path, key_path = _throwaway_ca_and_server_cert(self.directory_path)
        self.ca_bundle = str(ca_path)
        self.listen_port = free_port()
        self.management_port = free_port()
        self.dns_port = free_port()
        dns_management_port = free_port()
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{self.listen_port}",
                "managementListenAddress": f"127.0.0.1:{self.management_port}",
                "certificate": str(cert_path),
                "privateKey": str(key_path),
                "httpPort": self.http_port,
                "tlsPort": self.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        config_path = self.directory_path / "pebble-config.json"
        config_path.write_text(json.dumps(config, indent=2))
        self._spawn(
            "challtestsrv",
            [
                CHALLTESTSRV,
                "-dns01", f"127.0.0.1:{self.dns_port}",
                "-http01", "",
                "-https01", "",
                "-tlsalpn01", "",
                "-management", f"127.0.0.1:{dns_management_port}",
                "-defaultIPv4", "127.0.0.1",
                "-defaultIPv6", "",
            ],
            {},
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        self._wait(deadline, lambda: _tcp_answers(dns_management_port), "pebble-challtestsrv")
        self._spawn(
            "pebble",
            [PEBBLE, "-config", str(config_path), "-dnsserver", f"127.0.0.1:{self.dns_port}"],
            PEBBLE_ENV,
        )
        self._wait(deadline, self._directory_answers, "pebble's directory")

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = (self.directory_path / f"{name}.log").open("ab")
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                cwd=self.directory_path,
            )
        finally:
            log.close()  # the child holds its own copy
        self._processes.append(process)

    def _wait(self, deadline: float, ready: Callable[[], bool], what: str) -> None:
        while not ready():
            for process in self._processes:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{process.args[0]} exited ({process.returncode}): {self.logs()}"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready after {START_TIMEOUT}s: {self.logs()}")
            time.sleep(0.02)

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_bundle)

    def _directory_answers(self) -> bool:
        try:
            with urllib.request.urlopen(
                self.directory_url, timeout=2, context=self._context()
            ) as r:
                return r.status == 200 and "newOrder" in json.loads(r.read())
        except (OSError, ValueError):
            return False

    def _management_get(self, path: str) -> str | None:
        """GET a management resource: its text, or None when pebble has no such resource."""
        url = f"{self.management_url}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5, context=self._context()) as response:
                return response.read().decode()
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def issuing_roots_pem(self) -> str:
        """This run's root certificates (PEM), asked of pebble now: it makes new ones at each start.

        Every root pebble serves (``/roots/0``, ``/roots/1`` ... with alternate
        roots enabled), in order; the intermediates travel in the issued chain.
        """
        roots: list[str] = []
        for index in range(16):
            pem = self._management_get(f"/roots/{index}")
            if pem is None:
                break
            roots.append(pem if pem.endswith("\n") else pem + "\n")
        if not roots:
            raise RuntimeError(f"pebble at {self.management_url} serves no root")
        return "".join(roots)

    def intermediates_pem(self) -> str:
        """This run's intermediate certificates (PEM), for chains verified without the issued chain."""
        pems: list[str] = []
        for index in range(16):
            pem = self._management_get(f"/intermediates/{index}")
            if pem is None:
                break
            pems.append(pem if pem.endswith("\n") else pem + "\n")
        return "".join(pems)

    def logs(self) -> str:
        """The tail of both processes' output (for failure messages)."""
        tails = []
        for name in ("challtestsrv", "pebble"):
            path = self.directory_path / f"{name}.log"
            if path.exists():
                tails.append(f"--- {name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(tails)

    def stop(self) -> None:
        """Stop both processes (TERM, then KILL after a grace period); idempotent."""
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self._processes):
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()


def _tcp_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def running_pebble(directory: Path, http_port: int, tls_port: int) -> Iterator[Pebble]:
    """A started pebble, stopped when the block ends (also on failure)."""
    pebble = Pebble.start(directory, http_port, tls_port)
    try:
        yield pebble
    finally:
        pebble.stop()


@pytest.fixture
def pebble_server(tmp_path: Path) -> Iterator[Callable[..., Pebble]]:
    """A factory of pebbles: ``pebble_server(http_port=..., tls_port=...)``; all stopped at teardown.

    Pass the ports the test's challenge responders listen on (pebble's
    validator connects to 127.0.0.1 there); a port left out gets a free one
    nobody answers on.
    """
    started: list[Pebble] = []

    def start(http_port: int | None = None, tls_port: int | None = None) -> Pebble:
        directory = tmp_path / f"pebble-{len(started)}"
        pebble = Pebble.start(directory, http_port or free_port(), tls_port or free_port())
        started.append(pebble)
        return pebble

    try:
        yield start
    finally:
        for pebble in started:
            pebble.stop()
