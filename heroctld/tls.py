"""This server's TLS: the certificate its API serves and the CA it trusts.

Modes (``[tls] mode``, env ``HEROCTL_TLS_MODE``):

- ``cluster-ca`` (the default outside ``--dev``): the cluster's own CA lives in
  the replicated state (raft.fsm_pki; its key sealed with a key derived from
  the cluster key). Once this server has applied it, it opens the CA key and
  signs its own certificate for its advertise address, name, host name,
  127.0.0.1 and localhost, writes ``<data-dir>/tls/{ca,server,server-key}.pem``
  (the key 0600) and renews it when a third of its lifetime is left. A
  restarted server serves the certificate on disk at once.
- ``files``: ``cert_file``/``key_file`` (and ``ca_file``, else the system's
  trust store) from your own PKI, reloaded when they change on disk.
- ``off``: plain HTTP (behind a TLS proxy, or ``--dev``).

Rotation needs no restart and drops no connection: the listener keeps one
``ssl.SSLContext`` and a renewal calls ``load_cert_chain`` on it again, so
the next handshake gets the new certificate and connections already open
keep theirs. ``client_ctx`` is what this server verifies other servers with
(forwards, relays, joining): the cluster CA only, host names checked.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from domain.pki import (
    API_SERVER_NAME,
    CA_MAC_HEADER,
    CaKeys,
    CaOpenError,
    CertInfo,
    IssuedCert,
    cert_info,
    issue_server_cert,
    key_id,
    usable_names,
)
from raft.replica import Replica

log = logging.getLogger("heroctld.tls")

TLS_MODES = ("cluster-ca", "files", "off")
FILES_CHECK_EVERY = 30.0  # seconds between looks at the files of `files` mode
MAX_WAIT = 3600.0


@dataclass
class TlsSettings:
    """[tls] table, or HEROCTL_TLS_<KEY>: ``mode`` (cluster-ca, files, off);
    ``cert_file``, ``key_file``, ``ca_file`` for ``files``; ``cert_lifetime``:
    how long a certificate signed by the cluster CA is valid (renewed when a
    third is left; tests shorten it)."""

    mode: str = "cluster-ca"
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    cert_lifetime: float = 90 * 86400.0


def _write(path: Path, text: str, mode: int) -> None:
    """Atomically: a reader (a renewal's load, the embedded agent) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


class ServerTls:
    """The listener's and the outgoing connections' TLS of one server."""

    def __init__(
        self,
        settings: TlsSettings,
        data_dir: str,
        cluster_key: str,
        node_name: str,
        names: list[str],
    ) -> None:
        self.settings = settings
        self.mode = settings.mode
        self.dir = Path(data_dir) / "tls"
        self.node_name = node_name
        self.names = usable_names(
            [*names, node_name, API_SERVER_NAME, socket.gethostname(), "localhost", "127.0.0.1"]
        )
        self.keys = CaKeys(cluster_key)
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, checks host names
        self.client_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ca_pem: str | None = None
        self.serial: int | None = None
        self._renew_at = 0.0
        self._issuer: bytes = b""
        self._cert_names: frozenset[str] = frozenset()
        self._files_mtime: tuple[float, float] = (0.0, 0.0)
        self.ready = asyncio.Event()  # the listener has a certificate
        if self.enabled and self.mode == "files" and not settings.ca_file:
            self.client_ctx.load_default_certs()

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @property
    def ca_file(self) -> str | None:
        """The CA file this server's own clients (the embedded agent) verify with."""
        if self.mode == "cluster-ca":
            return str(self.dir / "ca.pem")
        return self.settings.ca_file or None

    # --- loading --------------------------------------------------------------
    def start(self) -> None:
        """What can be loaded before raft has anything: the files of ``files``
        mode (OSError/ssl.SSLError when unusable), a ``cluster-ca`` server's
        certificate from its last run."""
        if self.mode == "files":
            self._load_files()
        elif self.mode == "cluster-ca":
            ca, cert = _read(self.dir / "ca.pem"), _read(self.dir / "server.pem")
            if ca and cert:
                try:
                    info = cert_info(cert)
                    if info.not_after > time.time():
                        self.trust(ca)
                        self._load(info)
                except (ValueError, OSError, ssl.SSLError) as e:
                    log.warning("tls: not using the certificate in %s: %s", self.dir, e)

    def trust(self, ca_pem: str) -> None:
        """Verify the servers this one calls against ``ca_pem`` (the cluster CA)."""
        if ca_pem != self.ca_pem:
            self.client_ctx.load_verify_locations(cadata=ca_pem)
            self.ca_pem = ca_pem

    def _load(self, info: CertInfo) -> None:
        self.server_ctx.load_cert_chain(self.dir / "server.pem", self.dir / "server-key.pem")
        self.serial = info.serial
        self._renew_at = info.renew_at()  # a third of its lifetime left
        self._issuer = info.issuer_key_id
        self._cert_names = info.names
        self.ready.set()

    def _load_files(self) -> None:
        s = self.settings
        stamp = (os.stat(s.cert_file).st_mtime, os.stat(s.key_file).st_mtime)
        if stamp == self._files_mtime:
            return
        self.server_ctx.load_cert_chain(s.cert_file, s.key_file)
        if s.ca_file:
            ca = Path(s.ca_file).read_text()
            self.trust(ca)
        self.serial = cert_info(Path(s.cert_file).read_text()).serial
        if self._files_mtime != (0.0, 0.0):
            log.info("tls: reloaded %s (serial %x)", s.cert_file, self.serial)
        self._files_mtime = stamp
        self.ready.set()

    # --- cluster-ca: sign our own certificate -----------------------------------
    def _needs_cert(self, ca_pem: str, now: float) -> bool:
        if self.serial is None or now >= self._renew_at:
            return True
        if self._issuer and self._issuer != key_id(ca_pem):
            return True  # signed by another CA (a data dir from another cluster)
        return not set(self.names) <= self._cert_names

    def issue(self, ca_row: dict[str, object]) -> None:
        """Sign, write and load a new certificate from the CA in the state."""
        ca_pem = str(ca_row["cert"])
        sealed = ca_row["key"]
        assert isinstance(sealed, dict)
        ca = IssuedCert(ca_pem, self.keys.open(sealed))
        lifetime = datetime.timedelta(seconds=self.settings.cert_lifetime)
        issued = issue_server_cert(ca, self.node_name, self.names, lifetime)
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write(self.dir / "ca.pem", ca_pem, 0o644)
        _write(self.dir / "server-key.pem", issued.key_pem, 0o600)
        _write(self.dir / "server.pem", issued.cert_pem, 0o644)
        self.trust(ca_pem)
        info = cert_info(issued.cert_pem)
        self._load(info)
        log.info(
            "tls: serving a new certificate (serial %x) for %s, valid until %s",
            info.serial,
            ", ".join(self.names),
            datetime.datetime.fromtimestamp(info.not_after, datetime.UTC).isoformat(),
        )

    async def run(self, replica: Replica) -> None:
        """Keep the certificate current: sign one once the CA is in the state,
        again before it expires (``cluster-ca``); reload changed files (``files``)."""
        if self.mode == "files":
            while True:
                await asyncio.sleep(FILES_CHECK_EVERY)
                try:
                    self._load_files()
                except (OSError, ssl.SSLError, ValueError) as e:
                    log.error("tls: cannot reload %s: %s", self.settings.cert_file, e)
        if self.mode != "cluster-ca":
            return
        index = 0
        while True:
            with replica.read() as view:
                row = view.pki.ca()
                index = view.pki.index
            wait = MAX_WAIT
            if row is not None:
                try:
                    if self._needs_cert(str(row["cert"]), time.time()):
                        self.issue(row)
                    wait = min(MAX_WAIT, max(0.05, self._renew_at - time.time()))
                except (CaOpenError, OSError, ValueError, ssl.SSLError) as e:
                    log.error("tls: cannot sign this server's certificate: %s", e)
                    wait = 30.0
            await replica.wait_for_change(("pki",), index, wait)


class CaMismatch(Exception):
    """A server showed a CA without this cluster's MAC: not one of ours."""


async def fetch_join_ca(session: aiohttp.ClientSession, base_url: str, keys: CaKeys) -> str:
    """The CA of the cluster a joining server enters through ``base_url``:
    fetched without verification (we have no CA yet), then accepted only with
    the MAC that only a holder of the cluster key can make. CaMismatch when
    the MAC is missing or wrong: that server is not of our cluster."""
    async with session.get(base_url + "/v1/cluster/ca", ssl=False) as r:
        pem = (await r.read()).decode(errors="replace")
        if r.status != 200:
            raise aiohttp.ClientResponseError(
                r.request_info, (), status=r.status, message=pem[:200]
            )
        if not keys.mac_ok(pem, r.headers.get(CA_MAC_HEADER)):
            raise CaMismatch(
                f"{base_url} served a CA without this cluster's MAC ({CA_MAC_HEADER}): it is "
                "not a server of this cluster, or this server has a different cluster key"
            )
        return pem
