"""What may be written into nginx's configuration, checked before it is.

The renderer inserts host names, route paths, upstream addresses, file paths
and ACME tokens into nginx syntax. Each of them is checked here against a
grammar that cannot contain nginx's own syntax (quotes, ``;``, braces,
``$`` variables, whitespace, ``#`` comments), so a value the API let through
by mistake makes the render raise ``ValueError`` instead of emitting broken or
injected configuration. The grammars are deliberately narrower than what HTTP
allows: a route nginx could never match (``%``-escapes, ``..``) is refused
rather than silently dead.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "check_host",
    "check_route_path",
    "check_upstream",
    "check_bind",
    "check_port",
    "check_file_path",
    "check_challenge",
    "check_alpn_challenge",
    "check_cidr",
    "canonical_route_path",
]

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_RE = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")
_PATH_RE = re.compile(r"/[A-Za-z0-9._~!&()*+,=:@/-]*")
_FILE_RE = re.compile(r"/[A-Za-z0-9._+,=:@/-]*")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_KEY_AUTH_RE = re.compile(r"[A-Za-z0-9_.-]{1,512}")
_UPSTREAM_RE = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})")
_RESERVED_PREFIX = "/__heroctl"


def check_host(host: str) -> str:
    """A DNS name (lower case, optionally ``*.`` leftmost) or an IPv4 address."""
    if not isinstance(host, str) or len(host) > 253 or not _HOST_RE.fullmatch(host):
        raise ValueError(f"invalid host name {host!r}: lower-case DNS labels only")
    return host


def canonical_route_path(path: str) -> str:
    """The route's path without a trailing slash (``/`` stays ``/``): ``/api``
    and ``/api/`` are the same route (as Kubernetes' ``Prefix`` paths)."""
    check_route_path(path)
    return path.rstrip("/") or "/"


def check_route_path(path: str) -> str:
    """An absolute, normalized URI path prefix made of safe characters."""
    if not isinstance(path, str) or len(path) > 1024 or not _PATH_RE.fullmatch(path):
        raise ValueError(f"invalid route path {path!r}: must start with / and use URI characters")
    segments = path.split("/")[1:-1] if path.endswith("/") else path.split("/")[1:]
    if any(s in ("", ".", "..") for s in segments):
        raise ValueError(f"invalid route path {path!r}: not normalized (//, /./ or /../)")
    if path == _RESERVED_PREFIX or path.startswith(_RESERVED_PREFIX + "/"):
        raise ValueError(f"invalid route path {path!r}: {_RESERVED_PREFIX} is the ingress's own")
    return path


def check_upstream(upstream: str) -> str:
    """``host:port``: an IPv4 address, a ``[IPv6]`` literal or a DNS name, a port 1-65535."""
    m = _UPSTREAM_RE.fullmatch(upstream) if isinstance(upstream, str) else None
    if m is None:
        raise ValueError(f"invalid upstream {upstream!r}: expected host:port")
    host = m.group("host")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"invalid upstream {upstream!r}: bad IPv6 address") from None
    else:
        check_host(host.lower())
    check_port(int(m.group("port")), what=f"upstream {upstream!r}")
    return upstream


def check_port(port: int, what: str = "port") -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"invalid {what}: {port!r} is not a TCP port")
    return port


def check_bind(bind: str) -> str:
    """``""`` (every address) or one IP address."""
    if bind == "":
        return bind
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        raise ValueError(f"invalid bind address {bind!r}: an IP address or empty") from None
    return bind


def check_cidr(cidr: str) -> str:
    """An address or network a PROXY protocol header is believed from."""
    try:
        ipaddress.ip_network(cidr, strict=False)
    except (ValueError, TypeError):
        raise ValueError(f"invalid trusted proxy {cidr!r}: an address or a CIDR") from None
    return cidr


def check_file_path(path: str, what: str) -> str:
    """An absolute file path without characters nginx's syntax gives meaning to."""
    if not isinstance(path, str) or len(path) > 4096 or not _FILE_RE.fullmatch(path):
        raise ValueError(f"invalid {what} {path!r}: an absolute path of safe characters")
    return path


def check_challenge(token: str, key_authorization: str) -> None:
    """An ACME http-01 token (base64url) and its key authorization (token.thumbprint)."""
    if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
        raise ValueError(f"invalid ACME token {token!r}")
    if not isinstance(key_authorization, str) or not _KEY_AUTH_RE.fullmatch(key_authorization):
        raise ValueError(f"invalid key authorization for ACME token {token!r}")


def check_alpn_challenge(host: str, pair: object) -> None:
    """A tls-alpn-01 challenge: a host name (never a wildcard: RFC 8737 does
    not validate those) and a (certificate PEM, key PEM) pair. The PEMs go to
    files, never into the configuration; nginx -t checks that they load."""
    check_host(host)
    if host.startswith("*."):
        raise ValueError(f"invalid tls-alpn-01 host {host!r}: not for wildcard names")
    if not (
        isinstance(pair, tuple)
        and len(pair) == 2
        and all(isinstance(pem, str) and "-----BEGIN " in pem for pem in pair)
    ):
        raise ValueError(f"the tls-alpn-01 challenge of {host!r} needs a certificate and a key")
