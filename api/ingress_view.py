"""What the ingress serves, read from the replicated state: which
allocations serve a route, a certificate's public summary, and the render
model a node's ingress proxy is configured from (`GET /v1/nodes/:id/ingress`).
Pure functions of a `StateView` (the handlers hold the read)."""

from __future__ import annotations

import time
from typing import Any

from domain.certificates import describe
from domain.crypto import DecryptError, KeyMaterial
from domain.pki import API_SERVER_NAME
from raft.replica import StateView

EXPIRING_DAYS = 7  # a valid certificate this close to its end, not yet renewed: `expiring`


def serving(alloc: dict[str, Any]) -> bool:
    """Whether an allocation takes traffic: it runs, is meant to, and every
    task with a check passes it now (the live check, not the sticky
    deployment health)."""
    if alloc.get("status") != "running" or alloc.get("desired_status") != "run":
        return False
    tasks = (alloc.get("group_spec") or {}).get("tasks") or []
    states = alloc.get("task_states") or {}
    for task in tasks:
        if task.get("check") and (states.get(task["name"]) or {}).get("check_ok") is not True:
            return False
    return True


def route_targets(view: StateView, route: dict[str, Any]) -> list[dict[str, Any]]:
    """Every allocation of the route's job and group, with its address for
    the route's port and whether it takes traffic."""
    out = []
    for alloc in view.allocs.by_job(route["job"]):
        if alloc["group"] != route["group"] or alloc.get("desired_status") != "run":
            continue
        node = view.nodes.get(alloc["node"]) or {}
        port = (alloc.get("ports") or {}).get(route["port"])
        address = f"{node.get('address')}:{port}" if port and node.get("address") else None
        out.append(
            {
                "id": alloc["id"],
                "node": alloc.get("node_name"),
                "address": address,
                "status": alloc.get("status"),
                "healthy": serving(alloc) and address is not None,
            }
        )
    return sorted(out, key=lambda a: a["id"])


def cert_summary(domain: dict[str, Any], row: dict[str, Any] | None, now: float) -> dict[str, Any]:
    """`cert` of `GET /v1/ingress/:host`: status pending|valid|failed|expiring
    and the certificate's public fields (never its key)."""
    if domain["tls"] == "off":
        return {"status": "off"}
    if domain["tls"] == "manual":
        info = describe(domain["cert"]["cert_pem"])
        row = {**info, "status": "valid", "source": "manual", "last_error": None}
    row = row or {"status": "pending"}
    keys = ("issuer", "not_before", "not_after", "serial", "sha256", "renew_after", "last_error")
    out = {k: row.get(k) for k in keys}
    status = row.get("status", "pending")
    if row.get("cert_pem") or row.get("source") == "manual":
        not_after = float(row.get("not_after") or 0)
        if not_after <= now:
            status = "failed" if status == "failed" else "pending"
        elif not_after - now < EXPIRING_DAYS * 86_400:
            status = "expiring"
        else:
            status = "valid"
    out["status"] = status
    out["source"] = row.get("source", "acme")
    return out


def _site_cert(
    keys: KeyMaterial, domain: dict[str, Any], row: dict[str, Any] | None
) -> tuple[str | None, str | None]:
    """(chain PEM, key PEM) a node serves for a TLS host, or (None, None)."""
    try:
        if domain["tls"] == "manual":
            cert = domain["cert"]
            return cert["cert_pem"], keys.open_private_key(f"cert:{domain['host']}", cert["key"])
        if row and row.get("cert_pem") and row.get("key"):
            return row["cert_pem"], keys.open_private_key(f"cert:{domain['host']}", row["key"])
    except DecryptError:
        pass
    return None, None


def node_model(
    view: StateView,
    keys: KeyMaterial,
    *,
    api_domain: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """What every node's ingress serves (the same for every node: any node
    takes any host), and the pending ACME challenges (http-01 answers,
    tls-alpn-01 certificates). Certificate keys are opened here, for the
    node's agent only (the caller checked it is that node)."""
    now = time.time() if now is None else now
    domains = view.ingress.domains()
    sites = []
    for host, domain in sorted(domains.items()):
        if domain["source"] == "api":
            domain["cert"] = (view.ingress.get(host) or {}).get("cert")
        routes = []
        for route in domain["routes"]:
            targets = route_targets(view, route)
            upstreams = sorted(t["address"] for t in targets if t["healthy"])
            routes.append({"path": route["path"], "upstreams": upstreams})
        cert_pem, key_pem = (None, None)
        if domain["tls"] != "off":
            cert_pem, key_pem = _site_cert(keys, domain, view.certs.get(host))
        sites.append(
            {
                "host": host,
                "tls": domain["tls"] != "off",
                "cert_pem": cert_pem,
                "key_pem": key_pem,
                "routes": routes,
            }
        )
    if api_domain:
        sites.append(_api_site(view, keys, api_domain))
    return {
        "sites": sites,
        "challenges": view.acme.challenges(),
        "alpn_challenges": _alpn_challenges(view, keys),
    }


def _alpn_challenges(view: StateView, keys: KeyMaterial) -> dict[str, dict[str, str]]:
    """host -> {cert_pem, key_pem}: the tls-alpn-01 certificates, keys opened
    for the node (a key sealed under another cluster key is left out)."""
    out = {}
    for host, row in sorted(view.acme.alpn_challenges().items()):
        try:
            key_pem = keys.open_private_key(f"acme-alpn:{host}", row["key"])
        except DecryptError:
            continue
        out[host] = {"cert_pem": row["cert_pem"], "key_pem": key_pem}
    return out


def _api_site(view: StateView, keys: KeyMaterial, api_domain: str) -> dict[str, Any]:
    """`manage.<domain>`: the servers' API, over HTTPS verified against the
    cluster CA (every server certificate names API_SERVER_NAME)."""
    host = f"manage.{api_domain}"
    upstreams = sorted(
        str(row["api_address"]).split("://", 1)[-1].rstrip("/")
        for row in view.servers.values()
        if row.get("api_address")
    )
    tls_upstream = any(
        str(row.get("api_address", "")).startswith("https://") for row in view.servers.values()
    )
    cert_pem, key_pem = _site_cert(keys, {"host": host, "tls": "acme"}, view.certs.get(host))
    return {
        "host": host,
        "tls": True,
        "cert_pem": cert_pem,
        "key_pem": key_pem,
        "routes": [
            {
                "path": "/",
                "upstreams": upstreams,
                "upstream_tls": tls_upstream,
                "upstream_server_name": API_SERVER_NAME if tls_upstream else None,
            }
        ],
    }
