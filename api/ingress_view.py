"""What the ingress serves, read from the replicated state: which
allocations serve a route, a certificate's public summary, and the render
model a node's ingress proxy is configured from (`GET /v1/nodes/:id/ingress`).
Pure functions of a `StateView` (the handlers hold the read)."""

from __future__ import annotations

import time
from typing import Any

from domain.certificates import describe
from domain.crypto import DecryptError, KeyMaterial
from domain.ingress_routing import draining_now, ingress_released, routed, serving
from domain.pki import API_SERVER_NAME
from raft.replica import StateView

EXPIRING_DAYS = 7  # a valid certificate this close to its end, not yet renewed: `expiring`


def route_targets(view: StateView, route: dict[str, Any]) -> list[dict[str, Any]]:
    """Every allocation of the route's job and group, with its address for
    the route's port and whether the route sends it requests (it serves, and
    its version is one the group's update strategy routes to)."""
    out = []
    allocs = view.allocs.by_job(route["job"])
    chosen = routed(view.jobs.get(route["job"]), route["group"], allocs)
    for alloc in allocs:
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
                "version": alloc.get("job_version"),
                "healthy": serving(alloc) and address is not None,
                "routed": alloc["id"] in chosen and address is not None,
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
            upstreams = sorted(t["address"] for t in targets if t["routed"])
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
        "draining": sorted(a["id"] for a in draining(view, domains)),
        "challenges": view.acme.challenges(),
        "alpn_challenges": _alpn_challenges(view, keys),
    }


def routed_groups(domains: dict[str, dict[str, Any]]) -> set[tuple[str, str]]:
    """(job, group) of every route of the served domains."""
    return {(r["job"], r["group"]) for d in domains.values() for r in d["routes"] if "job" in r}


def draining(
    view: StateView, domains: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The allocations stopped while they took traffic whose tasks still run,
    of a group some route serves: each node's ingress acknowledges the model
    that lets go of them (listed in the model, so that their stop changes it)."""
    groups = routed_groups(view.ingress.domains() if domains is None else domains)
    if not groups:
        return []
    return [
        a
        for job in sorted({job for job, _ in groups})
        for a in view.allocs.by_job(job)
        if (job, a["group"]) in groups and draining_now(a)
    ]


def ingress_nodes(view: StateView) -> list[str]:
    """The ready nodes whose ingress serves: the ones a drain waits for."""
    return [
        node_id
        for node_id, node in view.nodes.items()
        if node.get("status") == "ready" and (node.get("ingress") or {}).get("enabled")
    ]


def with_release(
    view: StateView, allocs: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], bool]:
    """A node's allocations, each draining one (stopped while it took traffic
    from a route) with ``ingress_released``: whether every serving ingress
    let go of it, so its agent may stop its tasks; and whether any drains."""
    stopping = [a for a in allocs if draining_now(a)]
    if not stopping:
        return allocs, False
    groups = routed_groups(view.ingress.domains())
    nodes = ingress_nodes(view)
    released = {
        a["id"]: ingress_released(a, view.ingress_acks, nodes)
        for a in stopping
        if (a["job"], a["group"]) in groups
    }
    if not released:
        return allocs, False
    out = [
        {**a, "ingress_released": released[a["id"]]} if a["id"] in released else a for a in allocs
    ]
    return out, True


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
