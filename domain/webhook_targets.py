"""Where a webhook may send: public addresses only, unless the operator allows more.

Whoever may create a webhook chooses its URL, and the leader POSTs to it from
inside the cluster's network: unchecked, a webhook reaches what only the
cluster can reach (the cloud metadata service on 169.254.169.254, an admin
port on 127.0.0.1, a database on 10.x): server-side request forgery. So an
address `ipaddress` does not call global is refused (loopback, link-local,
private ranges, shared address space, unspecified, reserved), multicast too,
and so is an IPv6 address carrying one of those IPv4 addresses (mapped,
6to4, NAT64). The API checks a webhook's URL when it is created, and the
deliverer checks the addresses it connects to at every attempt, since a name
may resolve elsewhere by then (DNS rebinding). `[webhooks] allow_private =
true` turns the check off (a cluster whose receivers are on its own network).
Pure: callers resolve names themselves.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_KINDS = (
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_unspecified", "unspecified"),
    ("is_private", "private"),
    ("is_reserved", "reserved"),
)
ALLOW_HINT = "set [webhooks] allow_private = true to allow it"


def ip_literal(host: str) -> IPAddress | None:
    """The address a URL's host names literally (`10.0.0.1`, `::1`), None for a name."""
    try:
        return ipaddress.ip_address(host.partition("%")[0])  # without an IPv6 zone
    except ValueError:
        return None


def _embedded(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), else itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def refusal(address: str | IPAddress) -> str | None:
    """Why a webhook may not reach `address` ("127.0.0.1 (loopback)"), None if it may."""
    ip = ip_literal(address) if isinstance(address, str) else address
    if ip is None:
        return f"{address} (not an IP address)"
    inner = _embedded(ip)
    for attr, kind in _KINDS:
        if getattr(inner, attr):
            return f"{address} ({kind})"
    return None if inner.is_global else f"{address} (not globally routable)"


def first_refusal(addresses: Iterable[str | IPAddress]) -> str | None:
    """The refusal of the first address that is not allowed (one is enough: a
    connection may go to any of them)."""
    return next((r for a in addresses if (r := refusal(a)) is not None), None)
