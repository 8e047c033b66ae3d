"""The prefix's files: directories, certificates, keys, the fallback pair,
and the directory of the tls-alpn-01 hop's unix sockets.

Blocking helpers (the supervisor calls them through ``asyncio.to_thread``).
Every file is written atomically (a temp file in the same directory, fsynced,
renamed over) so nginx, reloading or restarting at any moment, reads either
the old file or the new one. Keys and certificates are 0600: the master,
still root when started as root, loads them before its workers drop to
``nobody``.
"""

from __future__ import annotations

import contextlib
import datetime
import grp
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.ingress.model import IngressConfig
from agent.ingress.paths import Paths
from agent.ingress.render import error_pages_conf

__all__ = [
    "prepare_prefix",
    "write_atomic",
    "write_site_certs",
    "referenced_cert_files",
    "remove_cert_files_except",
    "prepare_sockets_dir",
    "remove_stale_sockets",
    "remove_sockets_dir",
    "FALLBACK_NAME",
]

FALLBACK_NAME = "heroctl-ingress-fallback"


def write_atomic(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` in one rename; the file never exists with
    a wider mode than ``mode``, not even for a moment."""
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prepare_prefix(paths: Paths) -> None:
    """The prefix's directories (0700), our error pages, the fallback pair."""
    for directory in paths.dirs():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
    pages = error_pages_conf()
    if not paths.pages_conf.exists() or paths.pages_conf.read_text() != pages:
        write_atomic(paths.pages_conf, pages, 0o600)
    if not (paths.fallback_cert.exists() and paths.fallback_key.exists()):
        cert_pem, key_pem = _self_signed_pair()
        write_atomic(paths.fallback_key, key_pem, 0o600)
        write_atomic(paths.fallback_cert, cert_pem, 0o600)


def _self_signed_pair() -> tuple[bytes, bytes]:
    """The certificate the HTTPS default server shows to names we do not serve
    (made once per prefix): clients fail to verify it, as they should."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, FALLBACK_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _cert_files(config: IngressConfig, paths: Paths) -> dict[Path, str]:
    """Every certificate and key file a render of ``config`` names -> its PEM:
    the sites' and the pending tls-alpn-01 challenges'."""
    files: dict[Path, str] = {}
    for site in config.sites:
        if site.serves_https:
            assert site.cert_pem is not None and site.key_pem is not None
            cert_file, key_file = paths.site_cert_files(site.host, site.cert_pem, site.key_pem)
            files.update({cert_file: site.cert_pem, key_file: site.key_pem})
    for host, (cert_pem, key_pem) in config.alpn_challenges.items():
        cert_file, key_file = paths.alpn_cert_files(host, cert_pem, key_pem)
        files.update({cert_file: cert_pem, key_file: key_pem})
    return files


def referenced_cert_files(config: IngressConfig, paths: Paths) -> set[Path]:
    """The certificate and key files a render of ``config`` names."""
    return set(_cert_files(config, paths))


def write_site_certs(config: IngressConfig, paths: Paths) -> set[Path]:
    """Write the certificates and keys (the sites', the tls-alpn-01
    challenges') that are not on disk yet; returns the files written (so a
    refused candidate can take exactly those back)."""
    written: set[Path] = set()
    for path, pem in sorted(_cert_files(config, paths).items()):
        if not path.exists():
            write_atomic(path, pem, 0o600)
            written.add(path)
    return written


def remove_cert_files_except(paths: Paths, keep: set[Path]) -> list[Path]:
    """Remove site certificate and key files not in ``keep`` (never the fallback pair)."""
    removed = []
    fallback = {paths.fallback_cert, paths.fallback_key}
    for path in paths.certs_dir.iterdir():
        if path.suffix in (".crt", ".key") and path not in keep and path not in fallback:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def prepare_sockets_dir(paths: Paths) -> None:
    """The hop's socket directory. In the prefix it is ``run/`` (0700, the
    workers are this user); under ``/run`` (the workers are ``nobody``) it is
    0710 with the workers' group: they may connect to a socket they are told
    the name of, nobody else may, and no one lists it."""
    directory = paths.sockets_dir
    if directory == paths.run_dir:
        return  # one of the prefix's directories, made with them
    directory.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
    directory.mkdir(mode=0o700, exist_ok=True)
    group = (paths.worker_user or "").split()[-1:] or ["nogroup"]
    try:
        gid = grp.getgrnam(group[0]).gr_gid
    except KeyError:
        gid = -1  # no such group: only the master (root) may connect
    os.chown(directory, 0, gid)
    directory.chmod(0o710)


def remove_stale_sockets(paths: Paths) -> None:
    """Unix sockets a killed nginx left: a new master could not bind them.
    Only called while no master of this prefix runs."""
    try:
        entries = list(paths.sockets_dir.iterdir())
    except OSError:
        return
    for path in entries:
        if path.suffix == ".sock" and path.is_socket():
            path.unlink(missing_ok=True)


def remove_sockets_dir(paths: Paths) -> None:
    """The directory under ``/run`` goes with the ingress (``run/`` stays)."""
    if paths.sockets_dir == paths.run_dir:
        return
    remove_stale_sockets(paths)
    with contextlib.suppress(OSError):
        paths.sockets_dir.rmdir()
