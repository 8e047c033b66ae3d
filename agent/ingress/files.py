"""The prefix's files: directories, certificates, keys, the fallback pair.

Blocking helpers (the supervisor calls them through ``asyncio.to_thread``).
Every file is written atomically (a temp file in the same directory, fsynced,
renamed over) so nginx, reloading or restarting at any moment, reads either
the old file or the new one. Keys and certificates are 0600: the master,
still root when started as root, loads them before its workers drop to
``nobody``.
"""

from __future__ import annotations

import datetime
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


def referenced_cert_files(config: IngressConfig, paths: Paths) -> set[Path]:
    """The site certificate and key files a render of ``config`` names."""
    files: set[Path] = set()
    for site in config.sites:
        if site.serves_https:
            assert site.cert_pem is not None and site.key_pem is not None
            files.update(paths.site_cert_files(site.host, site.cert_pem, site.key_pem))
    return files


def write_site_certs(config: IngressConfig, paths: Paths) -> set[Path]:
    """Write the sites' certificates and keys that are not on disk yet; returns
    the files written (so a refused candidate can take exactly those back)."""
    written: set[Path] = set()
    for site in config.sites:
        if not site.serves_https:
            continue
        assert site.cert_pem is not None and site.key_pem is not None
        cert_file, key_file = paths.site_cert_files(site.host, site.cert_pem, site.key_pem)
        for path, pem in ((cert_file, site.cert_pem), (key_file, site.key_pem)):
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
