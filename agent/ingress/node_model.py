"""The render model a node reads (``GET /v1/nodes/{id}/ingress``) as an
``IngressConfig``: a pure function.

Whatever nginx must not be given is skipped and named (never a key), so one
bad site, route, upstream or challenge never stops the rest from being
served. The agent (``agent.ingress_sync``) logs and reports what was left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.ingress import checks
from agent.ingress.model import IngressConfig, Listeners, Route, Site

__all__ = ["ingress_config", "reachable_upstream"]

_ANY_ADDRESS = ("", "0.0.0.0", "::")


def reachable_upstream(upstream: str, address: str, host_ip: str) -> str:
    """``upstream`` (``address:port`` of an allocation, as the model gives it)
    as this node reaches it: an allocation of this node publishes its ports on
    ``host_ip``, which is not always the ``address`` the node advertises; an
    IPv6 address gets its brackets."""
    host, _, port = upstream.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if host == address and host_ip not in _ANY_ADDRESS:
        host = host_ip
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def _route(
    raw: Mapping[str, Any], where: str, ca_file: str | None, local: tuple[str, str] | None
) -> tuple[Route, list[str]]:
    """One route of the model and what of it was left out."""
    problems: list[str] = []
    upstream_tls = bool(raw.get("upstream_tls"))
    if upstream_tls and not ca_file:
        raise ValueError("its upstreams speak HTTPS and this node has no cluster CA to verify them")
    upstreams: set[str] = set()
    for item in raw.get("upstreams") or ():
        address = str(item)
        if local is not None and not upstream_tls:
            address = reachable_upstream(address, *local)
        try:
            upstreams.add(checks.check_upstream(address))
        except ValueError as e:
            problems.append(f"{where}: upstream left out: {e}")
    route = Route(
        path=raw["path"],
        upstreams=tuple(sorted(upstreams)),
        upstream_tls=upstream_tls,
        upstream_ca_file=ca_file if upstream_tls else None,
        upstream_server_name=raw.get("upstream_server_name") if upstream_tls else None,
    )
    return route, problems


def _site(
    raw: Mapping[str, Any], ca_file: str | None, local: tuple[str, str] | None
) -> tuple[Site, list[str]]:
    host = raw["host"]
    for key in ("cert_pem", "key_pem"):
        if not isinstance(raw.get(key) or "", str):
            raise TypeError(f"{key} must be a PEM string")
    problems: list[str] = []
    routes = []
    for raw_route in raw.get("routes") or ():
        where = f"{host}{raw_route.get('path', '?') if isinstance(raw_route, Mapping) else '?'}"
        try:
            route, left_out = _route(raw_route, where, ca_file, local)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            problems.append(f"route {where} left out: {e}")
            continue
        routes.append(route)
        problems += left_out
    site = Site(
        host=host,
        routes=tuple(routes),
        tls=bool(raw.get("tls")),
        cert_pem=raw.get("cert_pem") or None,
        key_pem=raw.get("key_pem") or None,
    )
    return site, problems


def ingress_config(
    model: Any,
    listeners: Listeners,
    *,
    ca_file: str | None = None,
    local: tuple[str, str] | None = None,
) -> tuple[IngressConfig, list[str]]:
    """The ``IngressConfig`` of a node model (``GET /v1/nodes/{id}/ingress``)
    and what was left out of it, and why (never a key).

    ``ca_file``: the cluster CA, verifying the upstreams of a route with
    ``upstream_tls`` (the API's domain); ``local``: this node's advertised
    address and the address its task ports are published on (see
    ``reachable_upstream``)."""
    problems: list[str] = []
    sites: list[Site] = []
    hosts: set[str] = set()
    raw_sites = model.get("sites") if isinstance(model, Mapping) else None
    if not isinstance(raw_sites, list):
        problems.append("the ingress model has no list of sites")
        raw_sites = []
    for raw in raw_sites:
        name = raw.get("host", "?") if isinstance(raw, Mapping) else "?"
        try:
            site, left_out = _site(raw, ca_file, local)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            problems.append(f"site {name!r} left out: {e}")
            continue
        problems += left_out
        if site.host in hosts:
            problems.append(f"site {site.host!r} left out: listed twice")
            continue
        hosts.add(site.host)
        sites.append(site)
    challenges: dict[str, str] = {}
    raw_challenges = model.get("challenges") if isinstance(model, Mapping) else None
    for token, key_authorization in (raw_challenges or {}).items():
        try:
            checks.check_challenge(token, key_authorization)
        except ValueError as e:
            problems.append(f"ACME challenge left out: {e}")
            continue
        challenges[token] = key_authorization
    alpn, alpn_problems = _alpn_challenges(model)
    config = IngressConfig(listeners, tuple(sites), challenges, alpn)
    return config, problems + alpn_problems


def _alpn_challenges(model: Any) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """The model's tls-alpn-01 certificates (host -> cert and key PEM)."""
    raw = model.get("alpn_challenges") if isinstance(model, Mapping) else None
    found: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    for host, pair in (raw if isinstance(raw, Mapping) else {}).items():
        try:
            pems = (pair["cert_pem"], pair["key_pem"])
            checks.check_alpn_challenge(host, pems)
        except (ValueError, TypeError, KeyError) as e:
            problems.append(f"tls-alpn-01 challenge left out: {type(e).__name__} {e}"[:300])
            continue
        found[host] = pems
    return found, problems
