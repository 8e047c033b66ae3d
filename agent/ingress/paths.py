"""Where everything of one ingress lives inside its prefix.

nginx started with a custom prefix still reaches for ``/var/lib/nginx`` and
``/var/log/nginx`` unless every path is given (docs: shared notes on nginx):
this is the one list of them. Several supervisors on one machine (tests run
several nodes) each get their own prefix, so nothing here is global.

Layout (``P`` is the prefix)::

    P/conf/nginx.conf       the live configuration (only ever a tested one)
    P/conf/candidate.conf   a render being checked with ``nginx -t``
    P/conf/pages.conf       our error pages, included by every server
    P/certs/                site certificates and keys (0600), the fallback pair
    P/logs/                 error.log, access.log (JSON), nginx.stderr
    P/run/nginx.pid         the master's pid
    P/tmp/                  nginx's five temp directories

Started as root, nginx's workers run as ``nobody`` and may not enter the
prefix (0700, like the agent's data directory above it): the rendered
configuration never needs them to. Request and response bodies stream
instead of spilling to temp files, the error pages are inline ``return``s,
the logs are opened by the master and inherited, and an overgrown access log
is truncated in place (``O_APPEND`` writers carry on at its new end) instead
of being reopened.

The one exception is the unix sockets of the tls-alpn-01 hop (see
``agent.ingress.render_stream``): a worker connects to them, so they cannot
live in the prefix when the workers are ``nobody``. As root they go to
``/run/heroctl-ingress/<digest of the prefix>/`` (the directory 0710, group
the workers' group: they may connect, not list); otherwise to ``P/run/``. A
unix socket's path must fit in 107 bytes: ``socket_problem`` says when it
does not (a very deep prefix without root), and the hop is then unavailable.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from agent.ingress import checks

__all__ = ["Paths", "TEMP_DIRS", "worker_user", "SOCKETS_ROOT"]

# nginx's temp-path directive -> directory name under tmp/.
TEMP_DIRS = {
    "client_body_temp_path": "client_body",
    "proxy_temp_path": "proxy",
    "fastcgi_temp_path": "fastcgi",
    "uwsgi_temp_path": "uwsgi",
    "scgi_temp_path": "scgi",
}
SOCKETS_ROOT = Path("/run/heroctl-ingress")  # the hop's sockets when the workers are nobody
_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux


def worker_user() -> str | None:
    """``"nobody <its group>"`` when this process is root (nginx's workers must
    not run as root), else None: an unprivileged nginx cannot switch users."""
    if os.geteuid() != 0:
        return None
    try:
        nobody = pwd.getpwnam("nobody")
        group = grp.getgrgid(nobody.pw_gid).gr_name
    except KeyError:
        return "nobody nogroup"
    return f"nobody {group}"


@dataclass(frozen=True)
class Paths:
    """The prefix's files; ``worker_user`` is the ``user`` directive's value or None."""

    prefix: Path
    worker_user: str | None = None

    def __post_init__(self) -> None:
        checks.check_file_path(str(self.prefix), "ingress prefix")
        if self.worker_user is not None and not all(
            part.replace("-", "").replace("_", "").isalnum() for part in self.worker_user.split()
        ):
            raise ValueError(f"invalid worker user {self.worker_user!r}")

    @classmethod
    def in_prefix(cls, prefix: Path) -> Paths:
        """The layout under ``prefix`` with the worker user this process needs."""
        return cls(Path(os.path.abspath(prefix)), worker_user())

    @property
    def conf_dir(self) -> Path:
        return self.prefix / "conf"

    @property
    def live_conf(self) -> Path:
        return self.conf_dir / "nginx.conf"

    @property
    def candidate_conf(self) -> Path:
        return self.conf_dir / "candidate.conf"

    @property
    def pages_conf(self) -> Path:
        return self.conf_dir / "pages.conf"

    @property
    def certs_dir(self) -> Path:
        return self.prefix / "certs"

    @property
    def fallback_cert(self) -> Path:
        return self.certs_dir / "fallback.crt"

    @property
    def fallback_key(self) -> Path:
        return self.certs_dir / "fallback.key"

    @property
    def logs_dir(self) -> Path:
        return self.prefix / "logs"

    @property
    def error_log(self) -> Path:
        return self.logs_dir / "error.log"

    @property
    def access_log(self) -> Path:
        return self.logs_dir / "access.log"

    @property
    def stderr_log(self) -> Path:
        return self.logs_dir / "nginx.stderr"

    @property
    def run_dir(self) -> Path:
        return self.prefix / "run"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "nginx.pid"

    @property
    def tmp_dir(self) -> Path:
        return self.prefix / "tmp"

    def temp_path(self, directive: str) -> Path:
        return self.tmp_dir / TEMP_DIRS[directive]

    def site_cert_files(self, host: str, cert_pem: str, key_pem: str) -> tuple[Path, Path]:
        """The certificate and key files of a site: named after the host and a
        digest of the pair, so a new certificate gets new files (the running
        configuration's stay untouched until the new one passed ``nginx -t``)
        and the name never reveals anything of the key."""
        checks.check_host(host)
        digest = hashlib.sha256(f"{cert_pem}\0{key_pem}".encode()).hexdigest()[:16]
        stem = f"{host.replace('*', '_wildcard_')}.{digest}"
        return self.certs_dir / f"{stem}.crt", self.certs_dir / f"{stem}.key"

    def alpn_cert_files(self, host: str, cert_pem: str, key_pem: str) -> tuple[Path, Path]:
        """The tls-alpn-01 certificate and key files of ``host``: like a site's,
        under a name no host can have (``_alpn_.``; hosts have no ``_``)."""
        cert_file, key_file = self.site_cert_files(host, cert_pem, key_pem)
        return (
            cert_file.with_name(f"_alpn_.{cert_file.name}"),
            key_file.with_name(f"_alpn_.{key_file.name}"),
        )

    @property
    def sockets_dir(self) -> Path:
        """Where the tls-alpn-01 hop's unix sockets live (see the module's docstring)."""
        if self.worker_user is None:
            return self.run_dir
        digest = hashlib.sha256(str(self.prefix).encode()).hexdigest()[:16]
        return SOCKETS_ROOT / digest

    @property
    def https_socket(self) -> Path:
        """The HTTPS server's listener while the tls-alpn-01 hop is in front."""
        return self.sockets_dir / "https.sock"

    def alpn_socket(self, index: int) -> Path:
        """The listener of the ``index``-th pending tls-alpn-01 challenge."""
        return self.sockets_dir / f"alpn-{index}.sock"

    def socket_problem(self) -> str | None:
        """Why the hop's sockets cannot be used here (None: they can)."""
        longest = self.alpn_socket(9999)
        if len(str(longest).encode()) > _SUN_PATH_MAX:
            return f"the ingress's socket path {longest} is longer than {_SUN_PATH_MAX} bytes"
        return None

    def dirs(self) -> tuple[Path, ...]:
        """Every directory of the prefix (each 0700: only the master enters)."""
        return (
            self.prefix,
            self.conf_dir,
            self.certs_dir,
            self.logs_dir,
            self.run_dir,
            self.tmp_dir,
        )
