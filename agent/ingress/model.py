"""The whole input of an ingress render: listeners, sites, routes, challenges.

Frozen values, checked when built (``agent.ingress.checks``) and again by the
renderer, so nothing that reaches nginx's syntax is unchecked. The agent
builds one ``IngressConfig`` from the cluster's state (healthy allocations'
host ports, certificates, pending ACME challenges) and hands it to
``NginxSupervisor.apply``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from agent.ingress import checks

__all__ = ["Route", "Site", "Listeners", "IngressConfig", "StreamModule"]


@dataclass(frozen=True)
class Route:
    """A path prefix of a site and where it goes.

    ``upstreams`` are ``host:port`` of the healthy allocations (host ports on
    any node); none means the route answers our 503 page. With
    ``upstream_tls`` the ingress speaks HTTPS to them and verifies them
    against ``upstream_ca_file`` for ``upstream_server_name`` (default: the
    site's host): how the API's own domain reaches the servers.
    """

    path: str
    upstreams: tuple[str, ...]
    upstream_tls: bool = False
    upstream_ca_file: str | None = None
    upstream_server_name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "upstreams", tuple(self.upstreams))
        self.validate()

    def validate(self) -> None:
        checks.check_route_path(self.path)
        for upstream in self.upstreams:
            checks.check_upstream(upstream)
        if self.upstream_tls and self.upstream_ca_file is None:
            raise ValueError(f"route {self.path!r}: upstream_tls needs upstream_ca_file")
        if self.upstream_ca_file is not None:
            checks.check_file_path(self.upstream_ca_file, "upstream CA file")
        if self.upstream_server_name is not None:
            checks.check_host(self.upstream_server_name)


@dataclass(frozen=True)
class Site:
    """A host name and its routes.

    A TLS site without a certificate yet is served over plain HTTP (no
    redirect), so an ACME http-01 validation can reach it; once it has one,
    HTTP redirects to HTTPS.
    """

    host: str
    routes: tuple[Route, ...]
    tls: bool
    cert_pem: str | None = None
    key_pem: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "routes", tuple(self.routes))
        self.validate()

    @property
    def serves_https(self) -> bool:
        """Whether this site has an HTTPS server (and HTTP redirects to it)."""
        return self.tls and self.cert_pem is not None

    def validate(self) -> None:
        checks.check_host(self.host)
        if (self.cert_pem is None) != (self.key_pem is None):
            raise ValueError(f"site {self.host!r}: a certificate needs its key and vice versa")
        if self.cert_pem is not None and not self.tls:
            raise ValueError(f"site {self.host!r}: a certificate is given but tls is off")
        seen: set[str] = set()
        for route in self.routes:
            route.validate()
            path = checks.canonical_route_path(route.path)
            if path in seen:
                raise ValueError(f"site {self.host!r}: two routes for path {path!r}")
            seen.add(path)


@dataclass(frozen=True)
class Listeners:
    """Where the ingress listens; ``bind`` ``""`` means every (IPv4) address.

    With ``proxy_protocol`` both listeners expect a PROXY protocol header
    (a TCP load balancer in front), and the client address it carries is
    believed only from ``trusted_proxies``.
    """

    bind: str = ""
    http_port: int = 80
    https_port: int = 443
    proxy_protocol: bool = False
    trusted_proxies: tuple[str, ...] = ()
    worker_processes: int | str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "trusted_proxies", tuple(self.trusted_proxies))
        self.validate()

    def address(self, port: int) -> str:
        """``listen``'s address for ``port`` on ``bind``."""
        bind = self.bind
        return f"{port}" if not bind else (f"[{bind}]:{port}" if ":" in bind else f"{bind}:{port}")

    def validate(self) -> None:
        checks.check_bind(self.bind)
        checks.check_port(self.http_port, "http_port")
        checks.check_port(self.https_port, "https_port")
        if self.http_port == self.https_port:
            raise ValueError("http_port and https_port must differ")
        if self.trusted_proxies and not self.proxy_protocol:
            raise ValueError("trusted_proxies only apply with proxy_protocol")
        for cidr in self.trusted_proxies:
            checks.check_cidr(cidr)
        workers = self.worker_processes
        if workers != "auto" and (
            isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 256
        ):
            raise ValueError(f"worker_processes must be 'auto' or 1-256, not {workers!r}")


@dataclass(frozen=True)
class StreamModule:
    """nginx's stream module, which only the tls-alpn-01 hop needs: ``load`` is
    the dynamic module's file for ``load_module`` (None: built into nginx)."""

    load: str | None = None

    def __post_init__(self) -> None:
        if self.load is not None:
            checks.check_file_path(self.load, "stream module")


@dataclass(frozen=True)
class IngressConfig:
    """Everything one render needs. ``challenges``: ACME http-01 token ->
    key authorization, answered on the HTTP listener for any host.
    ``alpn_challenges``: host -> (certificate PEM, key PEM) of a pending
    tls-alpn-01 challenge, shown on the HTTPS port to a client that offers
    only the ALPN protocol ``acme-tls/1`` for that host."""

    listeners: Listeners
    sites: tuple[Site, ...]
    challenges: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    alpn_challenges: Mapping[str, tuple[str, str]] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "sites", tuple(self.sites))
        object.__setattr__(self, "challenges", MappingProxyType(dict(self.challenges)))
        alpn = {host: tuple(pair) for host, pair in self.alpn_challenges.items()}
        object.__setattr__(self, "alpn_challenges", MappingProxyType(alpn))
        self.validate()

    def validate(self) -> None:
        """Every part's own checks, then what only the whole can check."""
        self.listeners.validate()
        hosts: set[str] = set()
        for site in self.sites:
            site.validate()
            if site.host in hosts:
                raise ValueError(f"two sites for host {site.host!r}")
            hosts.add(site.host)
        for token, key_authorization in self.challenges.items():
            checks.check_challenge(token, key_authorization)
        for host, pair in self.alpn_challenges.items():
            checks.check_alpn_challenge(host, pair)
