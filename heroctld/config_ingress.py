"""The ingress's settings: `[ingress]` (every node's proxy), `[acme]` (where
the leader gets certificates) and `[api]` (the API's own domain), each with
its `HEROCTL_<TABLE>_<KEY>` environment override (read strictly by
:mod:`heroctld.config_tables`)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from domain.certificates import normalize_host, valid_host
from heroctld.config_tables import Table, boolean, integer, one_of, text

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
ACME_CHALLENGES = ("http-01", "tls-alpn-01")


@dataclass
class IngressSettings:
    """[ingress] or HEROCTL_INGRESS_<KEY>: ``http_port``/``https_port``: the
    proxy's listeners (0: this node serves no ingress); ``bind``: their
    address ("" = every address); ``proxy_protocol``: a load balancer in
    front speaks PROXY protocol; ``trusted_proxies``: the addresses (CIDRs)
    whose PROXY header is believed."""

    http_port: int = 80
    https_port: int = 443
    bind: str = ""
    proxy_protocol: bool = False
    trusted_proxies: list[str] = field(default_factory=list)


@dataclass
class AcmeSettings:
    """[acme] or HEROCTL_ACME_<KEY>: ``directory`` (default: Let's Encrypt's
    production directory), ``email`` (the account's contact), ``ca_bundle``
    (a CA file to verify the directory's HTTPS with; default: the system's),
    ``challenge``: how the CA validates a host, ``http-01`` (port 80, the
    default) or ``tls-alpn-01`` (port 443 only: for clusters whose port 80 is
    closed; every node's nginx then needs its stream module)."""

    directory: str = LETS_ENCRYPT
    email: str = ""
    ca_bundle: str = ""
    challenge: str = "http-01"


@dataclass
class ApiSettings:
    """[api] or HEROCTL_API_<KEY>: ``domain``: every node's ingress serves the
    API at ``https://manage.<domain>/v1/`` with an ACME certificate."""

    domain: str = ""


def _cidrs(value: Any) -> list[str]:
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise ValueError("expected a list of addresses or CIDRs")
    out = []
    for item in filter(None, items):
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{item!r} is not an address or a CIDR") from None
    return out


def _domain(value: Any) -> str:
    name = text(value)
    if name and not valid_host(name, allow_wildcard=False):
        raise ValueError(f"expected a DNS domain like example.com, got {name!r}")
    return normalize_host(name) if name else ""


def _url(value: Any) -> str:
    url = text(value)
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"expected an http(s) URL, got {url!r}")
    return url


INGRESS = Table(
    "ingress",
    IngressSettings,
    {
        "http_port": integer(maximum=65535),
        "https_port": integer(maximum=65535),
        "bind": text,
        "proxy_protocol": boolean,
        "trusted_proxies": _cidrs,
    },
)
ACME = Table(
    "acme",
    AcmeSettings,
    {
        "directory": _url,
        "email": text,
        "ca_bundle": text,
        "challenge": one_of(*ACME_CHALLENGES),
    },
)
API = Table("api", ApiSettings, {"domain": _domain})
